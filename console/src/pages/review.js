// Trust and safety: the review queue (accounts in a risk state, with their signals and scores), one
// account's case (signals, linked accounts, referral tree, earning velocity, state history) and the
// staff decision with a reason (compliance and admin). Rules are on the Flags page.
import { useEffect, useState } from "preact/hooks";
import { admin } from "../api.js";
import { html, Field, Result, Pager, Loading, usePaged, useAction, fmtTime, money, asResult } from "../ui.js";

const STATES = ["review", "watch", "suspended", "banned", "ok"];
const DECISIONS = [
  ["clear", "Clear (back to ok)"],
  ["watch", "Watch"],
  ["review", "Keep in review"],
  ["suspend", "Suspend (cannot earn)"],
  ["ban", "Ban (sessions revoked, pending earnings clawed back)"],
];

function signalText(s) {
  return `${s.rule} ${s.value !== undefined ? `=${s.value} ` : ""}(score ${s.score}${s.enforced ? "" : ", shadow"})`;
}

export function RiskSummary({ userId }) {
  const [risk, setRisk] = useState(null);
  useEffect(() => {
    admin("GET", `/risk/users/${userId}`)
      .then(setRisk)
      .catch(() => setRisk(null));
  }, [userId]);
  if (!risk) return null;
  return html`<section aria-labelledby="risk-h">
    <h2 id="risk-h">Risk</h2>
    <p>State <strong>${risk.risk_state}</strong>, score ${risk.score} (shadow rules would add ${risk.shadow_score}).
      <a href=${`#/review/${userId}`}>Open the case</a></p>
    ${risk.signals.length ? html`<ul>${risk.signals.slice(0, 5).map((s) => html`<li>${signalText(s)}</li>`)}</ul>` : html`<p>No signals.</p>`}
    <p>Linked accounts: ${risk.links.nodes.filter((n) => n.role === "linked").length}.</p>
  </section>`;
}

function Case({ me, userId, onDecided }) {
  const [risk, setRisk] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  const action = useAction();
  useEffect(() => {
    admin("GET", `/risk/users/${userId}`)
      .then(setRisk)
      .catch((err) => setError(asResult(err)));
  }, [userId, tick]);
  const decide = (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    action.run(async () => {
      const r = await admin("POST", `/risk/users/${userId}/decision`, { body: { decision: form.get("decision"), reason: form.get("reason") } });
      setTick((t) => t + 1);
      onDecided();
      const fx = r.effects || {};
      const extra = [
        fx.sessions_revoked ? `${fx.sessions_revoked} session(s) revoked` : null,
        fx.clawed_back ? `${fx.clawed_back.formatted} clawed back` : null,
      ].filter(Boolean);
      return `Moved from ${r.from_state} to ${r.to_state}${extra.length ? `: ${extra.join(", ")}` : ""}.`;
    });
  };
  if (error) return html`<${Result} result=${error} />`;
  if (!risk) return html`<${Loading} what="the case" />`;
  const linked = risk.links.nodes.filter((n) => n.role === "linked");
  const via = (id) => risk.links.edges.filter((e) => e.source === id || e.target === id).map((e) => e.via);
  return html`<section aria-labelledby="case-h">
    <h2 id="case-h">Case of <a href=${`#/users/${userId}`}>this account</a>: ${risk.risk_state}, score ${risk.score}</h2>
    <p>Shadow rules (recorded, no effect) would add ${risk.shadow_score}.</p>
    <table><caption>Signals</caption>
      <thead><tr><th scope="col">Rule</th><th scope="col">Value</th><th scope="col">Threshold</th><th scope="col">Score</th><th scope="col">Mode</th><th scope="col">Last seen</th></tr></thead>
      <tbody>${risk.signals.map((s) => html`<tr><td>${s.rule}${s.address_only ? " (shared address)" : ""}</td><td class="num">${s.value}</td><td class="num">${s.threshold}</td><td class="num">${s.score}</td><td>${s.enforced ? "enforced" : "shadow"}</td><td>${fmtTime(s.updated_at)}</td></tr>`)}</tbody>
    </table>
    <h3>Linked accounts (${linked.length})</h3>
    ${linked.length
      ? html`<ul>${linked.map((n) => html`<li><a href=${`#/review/${n.user_id}`}>${n.user_id}</a> (${n.risk_state}) via ${[...new Set(via(n.user_id))].join(", ")}</li>`)}</ul>`
      : html`<p>None.</p>`}
    <h3>Referrals</h3>
    <p>Referred by: ${risk.referrals.referrer_id ? html`<a href=${`#/review/${risk.referrals.referrer_id}`}>${risk.referrals.referrer_id}</a>` : "nobody"}; referred ${risk.referrals.referred.length}.</p>
    ${risk.referrals.referred.length ? html`<ul>${risk.referrals.referred.map((r) => html`<li><a href=${`#/review/${r.user_id}`}>${r.user_id}</a> (${r.risk_state}, referral ${r.referral_status})</li>`)}</ul>` : null}
    <h3>Earning velocity</h3>
    <p>Completions: ${risk.velocity.completions_1h} in the last hour, ${risk.velocity.completions_24h} in 24 h, ${risk.velocity.completions_7d} in 7 days; rewards ${money(risk.velocity.rewards_24h)} in 24 h, ${money(risk.velocity.rewards_7d)} in 7 days.</p>
    <table><caption>State history</caption>
      <thead><tr><th scope="col">When</th><th scope="col">From</th><th scope="col">To</th><th scope="col">By</th><th scope="col">Reason</th></tr></thead>
      <tbody>${risk.transitions.map((t) => html`<tr key=${t.id}><td>${fmtTime(t.created_at)}</td><td>${t.from_state}</td><td>${t.to_state}</td><td>${t.actor_kind}</td><td>${t.reason}</td></tr>`)}</tbody>
    </table>
    ${["compliance", "admin"].includes(me.role)
      ? html`<form onSubmit=${decide} aria-label="Risk decision">
          <fieldset><legend>Decision</legend>
            ${DECISIONS.map(([value, label]) => html`<label class="block"><input type="radio" name="decision" value=${value} required /> ${label}</label>`)}
          </fieldset>
          <${Field} label="Reason for the decision" id="risk-reason"><textarea id="risk-reason" name="reason" required maxlength="500"></textarea><//>
          <button type="submit" disabled=${action.busy}>Record decision</button>
          <${Result} result=${action.result} />
        </form>`
      : null}
  </section>`;
}

export function ReviewPage({ me, args }) {
  const [state, setState] = useState("review");
  const paged = usePaged((cursor) => admin("GET", "/risk/queue", { query: { state, limit: 25, cursor } }), [state]);
  const userId = args[0];
  return html`<h1>Review queue</h1>
    <form class="inline" aria-label="Risk state" onSubmit=${(ev) => ev.preventDefault()}>
      <${Field} label="Accounts in state" id="risk-state">
        <select id="risk-state" value=${state} onChange=${(ev) => setState(ev.target.value)}>${STATES.map((s) => html`<option value=${s}>${s}</option>`)}</select>
      <//>
    </form>
    <${Result} result=${paged.error} />
    ${paged.items === null
      ? html`<${Loading} what="the queue" />`
      : paged.items.length
        ? html`<table>
            <caption>Accounts in ${state}, longest waiting first</caption>
            <thead><tr><th scope="col">Account</th><th scope="col">Since</th><th scope="col">Score</th><th scope="col">Signals</th><th scope="col">Case</th></tr></thead>
            <tbody>${paged.items.map(
              (i) => html`<tr key=${i.user_id}><td><a href=${`#/users/${i.user_id}`}>${i.email}</a></td><td>${fmtTime(i.risk_state_changed_at)}</td><td class="num">${i.score}</td>
                <td>${i.signals.map(signalText).join("; ") || "–"}</td><td><a href=${`#/review/${i.user_id}`} aria-label=${`Open the case of ${i.email}`}>Open</a></td></tr>`,
            )}</tbody>
          </table>`
        : html`<p>No accounts in ${state}.</p>`}
    <${Pager} paged=${paged} label="Review queue" />
    ${userId ? html`<${Case} key=${userId} me=${me} userId=${userId} onDecided=${paged.reload} />` : null}`;
}
