// Manual adjustments: one Idempotency-Key per form, made when the form appears and renewed only
// after a success, so a double click or a retry posts once.
import { useState } from "preact/hooks";
import { newIdempotencyKey, callAdmin } from "../api.js";
import { html, Field, Result, useAction } from "../ui.js";

// dollars typed by a person -> integer micro-dollars (no floating point)
export function dollarsToMicros(text) {
  const m = /^(-)?(\d{1,7})(?:\.(\d{1,6}))?$/.exec(String(text).trim().replace(/^\$/, ""));
  if (!m) return null;
  const micros = Number(m[2]) * 1_000_000 + Number((m[3] || "").padEnd(6, "0"));
  return m[1] ? -micros : micros;
}

export function AdjustmentsPage({ args }) {
  const [key, setKey] = useState(newIdempotencyKey);
  const action = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    const micros = dollarsToMicros(form.get("amount"));
    action.run(async () => {
      if (!micros) throw Object.assign(new Error("The amount is dollars, e.g. 25 or -1.50, and not zero."), { code: "invalid_amount" });
      const { data, replayed } = await callAdmin("POST", "/adjustments", {
        body: { user_id: String(form.get("user_id")).trim().toLowerCase(), amount_micros: micros, reason: form.get("reason") },
        idempotencyKey: key,
      });
      setKey(newIdempotencyKey());
      ev.target.reset();
      const again = data.duplicate || replayed ? " (already posted: shown again, not posted twice)" : "";
      return `Posted ${data.amount.formatted} to ${data.user_id}; balance now ${data.balance_after.formatted}, entry ${data.entry_id}${again}.`;
    });
  };
  return html`<h1>Adjustments</h1>
    <p>A credit or debit on a user's balance, recorded in the ledger and the audit log.</p>
    <form onSubmit=${submit} aria-label="Post an adjustment" data-idempotency-key=${key}>
      <${Field} label="User id" id="adj-user"><input id="adj-user" name="user_id" required defaultValue=${args[0] || ""} pattern="[0-9a-fA-F-]{36}" /><//>
      <${Field} label="Amount in dollars (negative for a debit)" id="adj-amount"><input id="adj-amount" name="amount" required inputmode="decimal" /><//>
      <${Field} label="Reason" id="adj-reason"><input id="adj-reason" name="reason" required maxlength="500" /><//>
      <button type="submit" disabled=${action.busy}>Post adjustment</button>
    </form>
    <${Result} result=${action.result} />`;
}
