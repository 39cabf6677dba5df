// The EarnPay staff console: a shell (sign-in, navigation by role, sign-out) and one page per job.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { loadConfig, onSessionEnd, setToken, auth, call, ApiError } from "./api.js";
import { html, Field, Result, asResult } from "./ui.js";
import { UsersPage, UserPage } from "./pages/users.js";
import { KycPage } from "./pages/kyc.js";
import { PayoutsPage } from "./pages/payouts.js";
import { AdjustmentsPage } from "./pages/adjustments.js";
import { VideosPage } from "./pages/videos.js";
import { FlagsPage } from "./pages/flags.js";
import { AuditPage } from "./pages/audit.js";
import "./style.css";

const READERS = ["support", "finance", "compliance", "admin"];
// the console's pages and the roles that may open them (the admin API's role matrix, docs/admin.md)
const PAGES = [
  { path: "users", label: "Users", roles: READERS, component: UsersPage },
  { path: "kyc", label: "KYC review", roles: ["compliance", "admin"], component: KycPage },
  { path: "payouts", label: "Payouts", roles: ["finance", "admin"], component: PayoutsPage },
  { path: "adjustments", label: "Adjustments", roles: ["admin"], component: AdjustmentsPage },
  { path: "videos", label: "Videos", roles: ["admin"], component: VideosPage },
  { path: "flags", label: "Flags", roles: ["admin"], component: FlagsPage },
  { path: "audit", label: "Audit log", roles: ["compliance", "admin"], component: AuditPage },
];

function useHash() {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const on = () => setHash(window.location.hash);
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
}

function SignIn({ onSignedIn, notice }) {
  const [step, setStep] = useState({ needCode: false });
  const [result, setResult] = useState(notice ? { error: { message: notice } } : null);
  const [busy, setBusy] = useState(false);
  const submit = async (ev) => {
    ev.preventDefault();
    if (busy) return;
    const form = new FormData(ev.target);
    const body = { email: form.get("email"), password: form.get("password") };
    const code = (form.get("code") || "").trim();
    if (code) body[step.codeField || "totp_code"] = code;
    setBusy(true);
    setResult(null);
    try {
      const { data } = await call("auth", "POST", "/login", { body });
      if (!READERS.includes(data.user.role)) {
        setToken(data.session.token);
        await call("auth", "POST", "/logout").catch(() => {});
        setToken(null);
        throw new ApiError(403, "not_staff", "This account is not a staff account.");
      }
      setToken(data.session.token);
      onSignedIn({ ...data.user, expires_at: data.session.expires_at });
    } catch (err) {
      // the API asks for a second factor: show the code field and send it next time
      if (/mfa|totp|two_factor|otp/.test(err.code || "")) {
        setStep({ needCode: true, codeField: (err.details && err.details.field) || step.codeField || "totp_code" });
      }
      setResult(asResult(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <h1>EarnPay staff console</h1>
    <form onSubmit=${submit} aria-label="Sign in">
      <${Field} label="Email" id="signin-email"><input id="signin-email" name="email" type="email" autocomplete="username" required /><//>
      <${Field} label="Password" id="signin-password">
        <input id="signin-password" name="password" type="password" autocomplete="current-password" required />
      <//>
      <${Field} label="Two-factor code" id="signin-code" hint=${step.needCode ? "Enter the 6-digit code from your authenticator app." : "Staff accounts with two-factor: the 6-digit code."}>
        <input id="signin-code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9A-Za-z-]{6,20}" required=${step.needCode} aria-describedby="signin-code-hint" />
      <//>
      <button type="submit" disabled=${busy}>Sign in</button>
    </form>
    <${Result} result=${result} />
  </main>`;
}

function App() {
  const [me, setMe] = useState(null);
  const [notice, setNotice] = useState(null);
  const route = useHash();
  useEffect(() => {
    onSessionEnd((err) => {
      setMe(null);
      setNotice(`Your session ended (${err.message}). Sign in again.`);
    });
  }, []);
  if (!me) {
    return html`<${SignIn} notice=${notice} onSignedIn=${(user) => {
      setNotice(null);
      setMe(user);
      if (!window.location.hash) window.location.hash = "#/users";
    }} />`;
  }
  const signOut = async () => {
    try {
      await auth("POST", "/logout");
    } catch {
      /* the session may have ended already */
    }
    setToken(null);
    setMe(null);
    setNotice("You signed out.");
  };
  const pages = PAGES.filter((p) => p.roles.includes(me.role));
  const [first, ...rest] = route;
  let page = pages.find((p) => p.path === (first || "users"));
  let content;
  if (first === "users" && rest.length) content = html`<${UserPage} me=${me} userId=${rest[0]} />`;
  else if (page) content = html`<${page.component} me=${me} args=${rest} />`;
  else content = html`<p role="alert">Your role (${me.role}) cannot open this page.</p>`;
  return html`
    <a class="skip" href="#main">Skip to content</a>
    <header>
      <span class="brand">EarnPay console</span>
      <nav aria-label="Pages">
        <ul>
          ${pages.map((p) => html`<li><a href=${`#/${p.path}`} aria-current=${page && page.path === p.path ? "page" : undefined}>${p.label}</a></li>`)}
        </ul>
      </nav>
      <span class="who">${me.email} (${me.role})</span>
      <button type="button" onClick=${signOut}>Sign out</button>
    </header>
    <main id="main" tabindex="-1">${content}</main>
  `;
}

loadConfig()
  .then(() => {
    const root = document.getElementById("app");
    root.replaceChildren(); // drop the "Loading…" placeholder
    render(html`<${App} />`, root);
  })
  .catch((err) => {
    const p = document.createElement("p");
    p.setAttribute("role", "alert");
    p.textContent = `The console could not start: ${err.message}`;
    document.getElementById("app").replaceChildren(p);
  });
