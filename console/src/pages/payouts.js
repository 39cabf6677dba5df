// Payouts: the approval queue (or any status), approve or reject one or a selection. Each payout is
// its own audited request with its own Idempotency-Key (a retried click replays, never repeats).
import { useState } from "preact/hooks";
import { admin, newIdempotencyKey } from "../api.js";
import { html, Field, Result, Pager, Loading, usePaged, fmtTime, money } from "../ui.js";

const STATES = ["requested", "approved", "submitted", "paid", "failed", "rejected", "cancelled"];

export function PayoutsPage() {
  const [status, setStatus] = useState("requested");
  const [selected, setSelected] = useState(new Set());
  const [busy, setBusy] = useState(false);
  const [outcomes, setOutcomes] = useState([]);
  const paged = usePaged((cursor) => admin("GET", "/payouts", { query: { status, limit: 25, cursor } }), [status]);
  const toggle = (id) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  const decide = async (ids, verb, reason) => {
    if (busy || !ids.length) return;
    setBusy(true);
    const results = [];
    for (const id of ids) {
      try {
        const body = verb === "reject" ? { reason } : undefined;
        const p = await admin("POST", `/payouts/${id}/${verb}`, { body, idempotencyKey: newIdempotencyKey() });
        results.push({ id, ok: `${money(p.amount)} ${p.status}` });
      } catch (err) {
        results.push({ id, error: `${err.message} (${err.code})` });
      }
    }
    setOutcomes(results);
    setSelected(new Set());
    setBusy(false);
    paged.reload();
  };
  const rejectForm = (ev) => {
    ev.preventDefault();
    decide([...selected], "reject", new FormData(ev.target).get("reason"));
  };
  const items = paged.items || [];
  const all = items.length > 0 && items.every((p) => selected.has(p.id));
  return html`<h1>Payouts</h1>
    <form class="inline" aria-label="Payout status" onSubmit=${(ev) => ev.preventDefault()}>
      <${Field} label="Status" id="payout-status">
        <select id="payout-status" value=${status} onChange=${(ev) => { setSelected(new Set()); setStatus(ev.target.value); }}>
          ${STATES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      <//>
    </form>
    <${Result} result=${paged.error} />
    ${paged.items === null
      ? html`<${Loading} what="payouts" />`
      : items.length
        ? html`<table>
            <caption>Payouts ${status}</caption>
            <thead><tr>
              ${status === "requested" ? html`<th scope="col"><input type="checkbox" aria-label="Select all" checked=${all} onChange=${() => setSelected(all ? new Set() : new Set(items.map((p) => p.id)))} /></th>` : null}
              <th scope="col">Requested</th><th scope="col">User</th><th scope="col">Amount</th><th scope="col">Method</th><th scope="col">Account</th><th scope="col">KYC</th>
              ${items[0].risk_state !== undefined ? html`<th scope="col">Risk</th><th scope="col">Top signals</th>` : null}
              <th scope="col">Status</th>${status === "requested" ? html`<th scope="col">Approve</th>` : null}
            </tr></thead>
            <tbody>${items.map(
              (p) => html`<tr key=${p.id}>
                ${status === "requested" ? html`<td><input type="checkbox" aria-label=${`Select payout of ${money(p.amount)} to ${p.user_email}`} checked=${selected.has(p.id)} onChange=${() => toggle(p.id)} /></td>` : null}
                <td>${fmtTime(p.requested_at)}</td><td><a href=${`#/users/${p.user_id}`}>${p.user_email}</a></td><td class="num">${money(p.amount)}</td>
                <td>${p.method_type} ${p.method_label}</td><td>${p.user_status}</td><td>${p.user_kyc_status}</td>
                ${p.risk_state !== undefined ? html`<td>${p.risk_state}</td><td>${(p.top_signals || []).map((s) => s.rule || s.kind || s.code).join(", ") || "–"}</td>` : null}
                <td>${p.status}</td>
                ${status === "requested" ? html`<td><button type="button" disabled=${busy} onClick=${() => decide([p.id], "approve")} aria-label=${`Approve payout of ${money(p.amount)} to ${p.user_email}`}>Approve</button></td>` : null}
              </tr>`,
            )}</tbody>
          </table>`
        : html`<p>No payouts ${status}.</p>`}
    <${Pager} paged=${paged} label="Payouts" />
    ${status === "requested"
      ? html`<div class="bulk">
          <p>${selected.size} selected.</p>
          <button type="button" disabled=${busy || !selected.size} onClick=${() => decide([...selected], "approve")}>Approve selected</button>
          <form class="inline" onSubmit=${rejectForm} aria-label="Reject selected payouts">
            <${Field} label="Rejection reason" id="reject-reason"><input id="reject-reason" name="reason" required maxlength="500" /><//>
            <button type="submit" disabled=${busy || !selected.size}>Reject selected</button>
          </form>
        </div>`
      : null}
    <div role="status" aria-live="polite" class="outcomes">
      ${outcomes.length
        ? html`<ul>${outcomes.map((o) => html`<li key=${o.id} class=${o.error ? "error" : "ok"}>Payout <code>${o.id.slice(0, 8)}</code>: ${o.error ? `Error: ${o.error}` : o.ok}</li>`)}</ul>`
        : null}
    </div>`;
}
