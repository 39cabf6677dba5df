// User search and the user page: balances, ledger (filters, paging), sessions, KYC, payout methods
// (masked), payouts, referral tree, withheld rewards and the user's audit trail.
import { useEffect, useState } from "preact/hooks";
import { admin, newIdempotencyKey } from "../api.js";
import { html, Field, Result, Pager, Loading, usePaged, useAction, fmtTime, money, asResult, Json } from "../ui.js";
import { RiskSummary } from "./review.js";

const AUDITORS = ["compliance", "admin"];

export function UserTable({ items, caption }) {
  if (!items.length) return html`<p>No users.</p>`;
  return html`<table>
    <caption>${caption}</caption>
    <thead><tr><th scope="col">Email</th><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Status</th><th scope="col">KYC</th><th scope="col">Referral code</th><th scope="col">Created</th></tr></thead>
    <tbody>
      ${items.map(
        (u) => html`<tr key=${u.id}>
          <td><a href=${`#/users/${u.id}`}>${u.email}</a></td>
          <td>${u.display_name}</td><td>${u.role}</td><td>${u.status}</td><td>${u.kyc_status}</td>
          <td><code>${u.referral_code}</code></td><td>${fmtTime(u.created_at)}</td>
        </tr>`,
      )}
    </tbody>
  </table>`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function UsersPage() {
  const [search, setSearch] = useState({ by: "email_prefix", term: "" });
  const [result, setResult] = useState(null);
  const paged = usePaged(
    (cursor) => {
      const query = { limit: 20, cursor };
      if (search.term) query[search.by] = search.term;
      return admin("GET", "/users", { query });
    },
    [search],
  );
  const submit = (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    const by = form.get("by");
    const term = String(form.get("term") || "").trim();
    setResult(null);
    if (by === "user_id") {
      if (!UUID.test(term)) return setResult({ error: { message: "A user id is a UUID.", code: "invalid_user_id" } });
      window.location.hash = `#/users/${term.toLowerCase()}`;
      return;
    }
    setSearch({ by, term });
  };
  return html`<h1>Users</h1>
    <form class="inline" onSubmit=${submit} aria-label="Search users">
      <${Field} label="Search by" id="search-by">
        <select id="search-by" name="by">
          <option value="email_prefix">Email prefix</option>
          <option value="email">Email (exact)</option>
          <option value="referral_code">Referral code</option>
          <option value="user_id">User id</option>
        </select>
      <//>
      <${Field} label="Search for" id="search-term"><input id="search-term" name="term" type="search" /><//>
      <button type="submit">Search</button>
    </form>
    <${Result} result=${result || paged.error} />
    ${paged.items === null ? html`<${Loading} what="users" />` : html`<${UserTable} items=${paged.items} caption=${search.term ? `Users matching “${search.term}”` : "Newest users"} />`}
    <${Pager} paged=${paged} label="Users" />`;
}

function Section({ title, children }) {
  const id = `sec-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return html`<section aria-labelledby=${id}><h2 id=${id}>${title}</h2>${children}</section>`;
}

// Finance and admin claw back a credit that has not cleared yet (POST .../entries/{id}/reverse).
function ReverseForm({ userId, onDone }) {
  const action = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    action.run(async () => {
      const r = await admin("POST", `/users/${userId}/entries/${encodeURIComponent(String(form.get("entry")).trim())}/reverse`, {
        body: { reason: form.get("reason") },
        idempotencyKey: newIdempotencyKey(),
      });
      onDone();
      return `Entry ${r.entry_id} reversed: ${r.amount.formatted}${r.duplicate ? " (it was reversed already)" : ""}.`;
    });
  };
  return html`<form class="inline" onSubmit=${submit} aria-label="Reverse a pending credit">
    <${Field} label="Entry id to reverse" id="reverse-entry"><input id="reverse-entry" name="entry" required inputmode="numeric" pattern="[0-9]{1,18}" /><//>
    <${Field} label="Reason for the reversal" id="reverse-reason"><input id="reverse-reason" name="reason" required maxlength="500" /><//>
    <button type="submit" disabled=${action.busy}>Reverse</button>
    <${Result} result=${action.result} />
  </form>`;
}

function Ledger({ userId, canReverse }) {
  const [type, setType] = useState("");
  const [choice, setChoice] = useState(""); // the select's own state: a re-render keeps what was picked
  const paged = usePaged((cursor) => admin("GET", `/users/${userId}/ledger`, { query: { limit: 20, cursor, type } }), [userId, type]);
  return html`<${Section} title="Ledger">
    <form class="inline" aria-label="Ledger filter" onSubmit=${(ev) => {
      ev.preventDefault();
      setType(new FormData(ev.target).get("type"));
    }}>
      <${Field} label="Entry type" id="ledger-type">
        <select id="ledger-type" name="type" value=${choice} onChange=${(ev) => setChoice(ev.target.value)}>
          ${["", "video_reward", "login_bonus", "streak_bonus", "referral_bonus", "referral_commission", "adjustment", "clearing", "reversal", "payout_hold", "payout_release", "payout_paid"].map(
            (t) => html`<option value=${t}>${t || "all types"}</option>`,
          )}
        </select>
      <//>
      <button type="submit">Filter</button>
    </form>
    <${Result} result=${paged.error} />
    ${paged.items === null
      ? html`<${Loading} what="the ledger" />`
      : html`<table>
          <caption>Ledger entries, newest first${type ? ` (${type})` : ""}</caption>
          <thead><tr><th scope="col">#</th><th scope="col">Entry id</th><th scope="col">Type</th><th scope="col">Amount</th><th scope="col">Balance after</th><th scope="col">Source</th><th scope="col">Details</th><th scope="col">When</th></tr></thead>
          <tbody>
            ${paged.items.map(
              (e) => html`<tr key=${e.id}><td>${e.seq}</td><td>${e.id}</td><td>${e.type}</td><td class="num">${money(e.amount)}</td><td class="num">${money(e.balance_after)}</td><td>${e.source}</td><td><${Json} value=${e.metadata} /></td><td>${fmtTime(e.created_at)}</td></tr>`,
            )}
          </tbody>
        </table>`}
    <${Pager} paged=${paged} label="Ledger" />
    ${canReverse ? html`<${ReverseForm} userId=${userId} onDone=${paged.reload} />` : null}
  <//>`;
}

function RoleForm({ user, onDone }) {
  const action = useAction();
  const [role, setRole] = useState(user.role);
  const submit = (ev) => {
    ev.preventDefault();
    action.run(async () => {
      const r = await admin("POST", `/users/${user.id}/role`, { body: { role } });
      onDone();
      return r.changed ? `Role changed to ${r.role}; ${r.sessions_revoked} session(s) ended.` : `The role was ${r.role} already.`;
    });
  };
  return html`<form class="inline" onSubmit=${submit} aria-label="Change role">
    <${Field} label="Role" id="role-select">
      <select id="role-select" name="role" value=${role} onChange=${(ev) => setRole(ev.target.value)}>
        ${["user", "support", "finance", "compliance", "admin"].map((r) => html`<option value=${r}>${r}</option>`)}
      </select>
    <//>
    <button type="submit" disabled=${action.busy}>Change role</button>
    <${Result} result=${action.result} />
  </form>`;
}

function Withheld({ userId, items, canGrant, onDone }) {
  const action = useAction();
  const grant = (w) => (ev) => {
    ev.preventDefault();
    const reason = new FormData(ev.target).get("reason");
    action.run(async () => {
      const r = await admin("POST", `/users/${userId}/withheld/${w.id}/grant`, { body: { reason }, idempotencyKey: newIdempotencyKey() });
      onDone();
      return `Granted ${r.amount.formatted}; balance now ${r.balance_after.formatted}.`;
    });
  };
  if (!items.length) return html`<p>Nothing withheld by the daily cap.</p>`;
  return html`<table>
      <caption>Rewards the daily cap withheld</caption>
      <thead><tr><th scope="col">Video</th><th scope="col">Day</th><th scope="col">Withheld</th><th scope="col">Status</th>${canGrant ? html`<th scope="col">Grant</th>` : null}</tr></thead>
      <tbody>
        ${items.map(
          (w) => html`<tr key=${w.id}><td>${w.video_title}</td><td>${w.day}</td><td class="num">${money(w.withheld)}</td><td>${w.status}</td>
            ${canGrant
              ? html`<td>${w.status === "withheld"
                  ? html`<form class="inline" onSubmit=${grant(w)} aria-label=${`Grant withheld reward ${w.id}`}>
                      <label class="sr-only" for=${`grant-reason-${w.id}`}>Reason</label>
                      <input id=${`grant-reason-${w.id}`} name="reason" required maxlength="500" placeholder="Reason" />
                      <button type="submit" disabled=${action.busy}>Grant</button>
                    </form>`
                  : "–"}</td>`
              : null}
          </tr>`,
        )}
      </tbody>
    </table>
    <${Result} result=${action.result} />`;
}

function UserAudit({ userId }) {
  const paged = usePaged((cursor) => admin("GET", "/audit", { query: { subject_user_id: userId, limit: 10, cursor } }), [userId]);
  return html`<${Section} title="Audit trail">
    <${Result} result=${paged.error} />
    ${paged.items === null ? html`<${Loading} what="the audit trail" />` : html`<${AuditTable} items=${paged.items} caption="Staff actions about this user" />`}
    <${Pager} paged=${paged} label="Audit trail" />
  <//>`;
}

export function AuditTable({ items, caption }) {
  if (!items.length) return html`<p>No audit entries.</p>`;
  return html`<table>
    <caption>${caption}</caption>
    <thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Actor</th><th scope="col">Target</th><th scope="col">Reason</th><th scope="col">After</th></tr></thead>
    <tbody>
      ${items.map(
        (e) => html`<tr key=${e.id}><td>${fmtTime(e.created_at)}</td><td><code>${e.action}</code></td>
          <td>${e.actor_id ? html`<a href=${`#/users/${e.actor_id}`}>${e.actor_role}</a>` : e.actor_role}</td>
          <td>${e.target_type} <code>${e.target_id}</code></td><td>${e.reason || "–"}</td><td><${Json} value=${e.after} /></td></tr>`,
      )}
    </tbody>
  </table>`;
}

export function UserPage({ me, userId }) {
  const [state, setState] = useState({ detail: null, account: null, error: null, tick: 0 });
  const reload = () => setState((s) => ({ ...s, tick: s.tick + 1 }));
  useEffect(() => {
    Promise.all([admin("GET", `/users/${userId}`), admin("GET", `/users/${userId}/account`)])
      .then(([detail, account]) => setState((s) => ({ ...s, detail, account, error: null })))
      .catch((err) => setState((s) => ({ ...s, error: asResult(err) })));
  }, [userId, state.tick]);
  if (state.error) return html`<h1>User</h1><${Result} result=${state.error} />`;
  if (!state.detail) return html`<h1>User</h1><${Loading} what="the user" />`;
  const { user, balance, payouts } = state.detail;
  const acct = state.account;
  return html`<h1>${user.display_name} <small class="muted">${user.email}</small></h1>
    <dl class="facts">
      <dt>User id</dt><dd><code>${user.id}</code></dd>
      <dt>Role</dt><dd>${user.role}</dd>
      <dt>Status</dt><dd>${user.status}</dd>
      <dt>KYC</dt><dd>${user.kyc_status}${AUDITORS.includes(me.role) && user.kyc_status !== "none" ? html` (<a href=${`#/kyc/${user.id}`}>documents</a>)` : null}</dd>
      <dt>Referral code</dt><dd><code>${user.referral_code}</code></dd>
      <dt>Created</dt><dd>${fmtTime(user.created_at)}</dd>
      <dt>Last seen</dt><dd>${fmtTime(user.last_seen_at)} (${user.live_sessions} live session(s))</dd>
    </dl>
    ${me.role === "admin" ? html`<${RoleForm} user=${user} onDone=${reload} />` : null}
    <${Section} title="Balances">
      <table><caption>Balances by bucket</caption>
        <thead><tr><th scope="col">Bucket</th><th scope="col">Amount</th></tr></thead>
        <tbody>
          <tr><th scope="row">Available</th><td class="num">${money(balance.available)}</td></tr>
          ${Object.entries(balance)
            .filter(([k, v]) => v && typeof v === "object" && "formatted" in v && !["available", "lifetime_earned", "lifetime_paid_out"].includes(k))
            .map(([k, v]) => html`<tr><th scope="row">${k.charAt(0).toUpperCase() + k.slice(1).replace(/_/g, " ")}</th><td class="num">${v.formatted}</td></tr>`)}
          <tr><th scope="row">Lifetime earned</th><td class="num">${money(balance.lifetime_earned)}</td></tr>
          <tr><th scope="row">Lifetime paid out</th><td class="num">${money(balance.lifetime_paid_out)}</td></tr>
        </tbody>
      </table>
    <//>
    <${RiskSummary} userId=${user.id} />
    <${Ledger} userId=${user.id} canReverse=${["finance", "admin"].includes(me.role)} />
    <${Section} title="Payouts">
      <p>${payouts.in_flight} in flight.</p>
      ${payouts.recent.length
        ? html`<table><caption>Recent payouts</caption>
            <thead><tr><th scope="col">Requested</th><th scope="col">Amount</th><th scope="col">Method</th><th scope="col">Status</th><th scope="col">Completed</th></tr></thead>
            <tbody>${payouts.recent.map((p) => html`<tr key=${p.id}><td>${fmtTime(p.requested_at)}</td><td class="num">${money(p.amount)}</td><td>${p.method_type} ${p.method_label}</td><td>${p.status}</td><td>${fmtTime(p.completed_at)}</td></tr>`)}</tbody>
          </table>`
        : html`<p>No payouts.</p>`}
    <//>
    ${acct
      ? html`
          <${Section} title="Payout methods">
            ${acct.payout_methods.length
              ? html`<ul>${acct.payout_methods.map((m) => html`<li key=${m.id}>${m.type}: ${m.label}${m.is_default ? " (default)" : ""}${m.erased_at ? " (erased)" : ""}</li>`)}</ul>`
              : html`<p>No payout methods.</p>`}
          <//>
          <${Section} title="Sessions">
            <table><caption>Newest sessions</caption>
              <thead><tr><th scope="col">Started</th><th scope="col">Last seen</th><th scope="col">Expires</th><th scope="col">State</th></tr></thead>
              <tbody>${acct.sessions.map((s) => html`<tr key=${s.id}><td>${fmtTime(s.created_at)}</td><td>${fmtTime(s.last_seen_at)}</td><td>${fmtTime(s.expires_at)}</td><td>${s.live ? "live" : s.revoked_reason ? `revoked (${s.revoked_reason})` : "ended"}</td></tr>`)}</tbody>
            </table>
          <//>
          <${Section} title="Referral tree">
            <p>Referred by: ${acct.referrals.referred_by ? html`<a href=${`#/users/${acct.referrals.referred_by.id}`}>${acct.referrals.referred_by.email}</a>` : "nobody"}</p>
            <p>Referred ${acct.referrals.referred_total} people.</p>
            ${acct.referrals.referred.length
              ? html`<ul>${acct.referrals.referred.map((r) => html`<li key=${r.id}><a href=${`#/users/${r.id}`}>${r.email}</a> (${r.display_name}), who referred ${r.referred_count}</li>`)}</ul>`
              : null}
          <//>
          <${Section} title="Withheld rewards">
            <${Withheld} userId=${user.id} items=${acct.withheld_rewards} canGrant=${me.role === "admin"} onDone=${reload} />
          <//>`
      : null}
    ${AUDITORS.includes(me.role) ? html`<${UserAudit} userId=${user.id} />` : null}`;
}
