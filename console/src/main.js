// The EarnPay staff console: a shell (sign-in, navigation by role, sign-out) and one page per job.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { loadConfig, onSessionEnd, onStepUp, onMfaMissing, setToken, auth, call, ApiError } from "./api.js";
import { html, Field, Result, asResult } from "./ui.js";
import { UsersPage, UserPage } from "./pages/users.js";
import { KycPage } from "./pages/kyc.js";
import { PayoutsPage } from "./pages/payouts.js";
import { AdjustmentsPage } from "./pages/adjustments.js";
import { VideosPage } from "./pages/videos.js";
import { FlagsPage } from "./pages/flags.js";
import { AuditPage } from "./pages/audit.js";
import { ReviewPage } from "./pages/review.js";
import "./style.css";

const READERS = ["support", "finance", "compliance", "admin"];
// the console's pages and the roles that may open them (the admin API's role matrix, docs/admin.md)
const PAGES = [
  { path: "users", label: "Users", roles: READERS, component: UsersPage },
  { path: "kyc", label: "KYC review", roles: ["compliance", "admin"], component: KycPage },
  { path: "payouts", label: "Payouts", roles: ["finance", "admin"], component: PayoutsPage },
  { path: "review", label: "Review queue", roles: READERS, component: ReviewPage },
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
    if (code) body.mfa_code = code;
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
      onSignedIn({ ...data.user, expires_at: data.session.expires_at, mfa: data.mfa || "not_required" });
    } catch (err) {
      // the API asks for the second factor: the code field becomes required
      if (err.code === "mfa_code_required") setStep({ needCode: true });
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

// Two-factor enrolment for a staff member who has none yet: the QR code (an SVG the API made, shown
// as an image, never as markup), the secret for typing by hand, the first code, then the recovery
// codes once.
function Enrol({ onDone }) {
  const [enrolment, setEnrolment] = useState(null);
  const [codes, setCodes] = useState(null);
  const [result, setResult] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    auth("POST", "/mfa/enrol")
      .then((r) => setEnrolment(r.data))
      .catch((err) => setResult(asResult(err)));
  }, []);
  const confirm = async (ev) => {
    ev.preventDefault();
    if (busy) return;
    setBusy(true);
    try {
      const r = await auth("POST", "/mfa/confirm", { body: { code: new FormData(ev.target).get("code").trim() } });
      setCodes(r.data.recovery_codes);
      setResult({ ok: "Two-factor authentication is on." });
    } catch (err) {
      setResult(asResult(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <h1>Set up two-factor authentication</h1>
    ${codes
      ? html`<p>Keep these recovery codes somewhere safe: each works once if you lose your authenticator. They are not shown again.</p>
          <ul class="codes" aria-label="Recovery codes">${codes.map((c) => html`<li><code>${c}</code></li>`)}</ul>
          <${Result} result=${result} />
          <button type="button" onClick=${onDone}>I saved them: continue</button>`
      : enrolment
        ? html`<p>Scan the code with your authenticator app, or type the secret, then enter the 6-digit code it shows.</p>
            <img class="qr" src=${`data:image/svg+xml;base64,${btoa(enrolment.qr_svg)}`} alt="QR code of the two-factor secret" width="200" height="200" />
            <p>Secret: <code data-testid="mfa-secret">${enrolment.secret}</code></p>
            <form onSubmit=${confirm} aria-label="Confirm two-factor">
              <${Field} label="Code from the app" id="enrol-code"><input id="enrol-code" name="code" inputmode="numeric" autocomplete="one-time-code" required /><//>
              <button type="submit" disabled=${busy}>Turn on two-factor</button>
            </form>
            <${Result} result=${result} />`
        : html`<${Result} result=${result} />`}
  </main>`;
}

// The step-up prompt: a money move needs a code entered in the last few minutes.
function StepUp({ pending, onClose }) {
  const [result, setResult] = useState(null);
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  useEffect(() => input.current && input.current.focus(), []);
  const submit = async (ev) => {
    ev.preventDefault();
    if (busy) return;
    setBusy(true);
    try {
      await auth("POST", "/mfa/step-up", { body: { code: new FormData(ev.target).get("code").trim() } });
      onClose();
      pending.resolve();
    } catch (err) {
      setResult(asResult(err));
    } finally {
      setBusy(false);
    }
  };
  const cancel = () => {
    onClose();
    pending.reject(new ApiError(403, "step_up_cancelled", "This needs a two-factor code; nothing was done."));
  };
  return html`<div class="dialog" role="dialog" aria-modal="true" aria-labelledby="stepup-h" onKeyDown=${(ev) => ev.key === "Escape" && cancel()}>
    <h2 id="stepup-h">Confirm with your two-factor code</h2>
    <p>This moves money or changes access: enter the code from your authenticator app.</p>
    <form onSubmit=${submit} aria-label="Two-factor confirmation">
      <${Field} label="Two-factor code" id="stepup-code"><input id="stepup-code" name="code" ref=${input} inputmode="numeric" autocomplete="one-time-code" required /><//>
      <button type="submit" disabled=${busy}>Confirm</button>
      <button type="button" onClick=${cancel}>Cancel</button>
    </form>
    <${Result} result=${result} />
  </div>`;
}

function App() {
  const [me, setMe] = useState(null);
  const [notice, setNotice] = useState(null);
  const [stepUp, setStepUp] = useState(null);
  const route = useHash();
  useEffect(() => {
    onSessionEnd((err) => {
      setMe(null);
      setStepUp(null);
      setNotice(`Your session ended (${err.message}). Sign in again.`);
    });
    onStepUp(() => new Promise((resolve, reject) => setStepUp({ resolve, reject })));
    onMfaMissing(() => setMe((m) => (m ? { ...m, mfa: "enrolment_required" } : m)));
  }, []);
  if (!me) {
    return html`<${SignIn} notice=${notice} onSignedIn=${(user) => {
      setNotice(null);
      setMe(user);
      if (!window.location.hash) window.location.hash = "#/users";
    }} />`;
  }
  if (me.mfa === "enrolment_required") {
    return html`<${Enrol} onDone=${() => setMe({ ...me, mfa: "verified" })} />`;
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
    ${stepUp ? html`<${StepUp} pending=${stepUp} onClose=${() => setStepUp(null)} />` : null}
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
