// The staff console's build: hashed file names under assets/ (cached for a year by the CDN), and an
// index.html without inline script (the Content-Security-Policy allows scripts from 'self' only).
import { defineConfig } from "vite";

export default defineConfig({
  // relative asset URLs: the same build serves at /console/ locally and at / on the CDN
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // no module-preload polyfill: it would be an inline script, which the CSP refuses
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
});
