// The admin API client. The staff token lives in this module's memory only: never in localStorage,
// sessionStorage or a cookie, so a reload or a closed tab signs the staff member out.
let token = null;
let config = null;
let sessionEnded = () => {};
// Staff two-factor: a money move answered 403 step_up_required asks the page for a fresh code
// (POST /auth/mfa/step-up), then is sent again once, with the same Idempotency-Key.
let stepUp = null;
let mfaMissing = () => {};

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

export async function loadConfig() {
  const resp = await fetch("config.json", { cache: "no-store", credentials: "omit" });
  if (!resp.ok) throw new Error(`config.json: HTTP ${resp.status}`);
  config = await resp.json();
  return config;
}

export function onSessionEnd(fn) {
  sessionEnded = fn;
}

export function onStepUp(fn) {
  stepUp = fn;
}

export function onMfaMissing(fn) {
  mfaMissing = fn;
}

export function setToken(value) {
  token = value;
}

export function signedIn() {
  return token !== null;
}

// A new key per form or action: the same key on a retried or double-clicked post makes it post once.
export function newIdempotencyKey() {
  return crypto.randomUUID();
}

export async function call(fn, method, path, { body, query, idempotencyKey } = {}) {
  const base = config.api[fn];
  const url = new URL(base.replace(/\/$/, "") + path, window.location.href);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "network_error", `The API could not be reached (${err.message}).`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(resp.status, e.code || `http_${resp.status}`, e.message || `HTTP ${resp.status}`, e.details);
    // the session itself is gone (expired, idle, revoked): not a wrong code or password on a form
    if (resp.status === 401 && token !== null && (err.code === "invalid_session" || err.code === "missing_session")) {
      token = null;
      sessionEnded(err);
    }
    throw err;
  }
  return { data, status: resp.status, replayed: resp.headers.get("Idempotent-Replayed") === "true" };
}

export async function callAdmin(method, path, opts) {
  try {
    return await call("admin", method, path, opts);
  } catch (err) {
    if (err.code === "step_up_required" && stepUp) {
      await stepUp(); // rejects when the staff member cancels
      return call("admin", method, path, opts);
    }
    if (err.code === "mfa_required") mfaMissing(err);
    throw err;
  }
}

export const admin = (method, path, opts) => callAdmin(method, path, opts).then((r) => r.data);
export const auth = (method, path, opts) => call("auth", method, path, opts);
