// The audit log with filters (actor, subject user, target, action), newest first, paged.
import { useState } from "preact/hooks";
import { admin } from "../api.js";
import { html, Field, Result, Pager, Loading, usePaged } from "../ui.js";
import { AuditTable } from "./users.js";

const FILTERS = [
  ["action", "Action (e.g. payout.approve)"],
  ["actor_id", "Actor (user id)"],
  ["subject_user_id", "About user (user id)"],
  ["target_type", "Target type"],
  ["target_id", "Target id"],
];

export function AuditPage() {
  const [filters, setFilters] = useState({});
  const paged = usePaged((cursor) => admin("GET", "/audit", { query: { ...filters, limit: 25, cursor } }), [filters]);
  const submit = (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    const next = {};
    for (const [name] of FILTERS) {
      const v = String(form.get(name) || "").trim();
      if (v) next[name] = v;
    }
    setFilters(next);
  };
  return html`<h1>Audit log</h1>
    <form class="inline" onSubmit=${submit} aria-label="Audit filters">
      ${FILTERS.map(([name, label]) => html`<${Field} label=${label} id=${`audit-${name}`}><input id=${`audit-${name}`} name=${name} /><//>`)}
      <button type="submit">Filter</button>
    </form>
    <${Result} result=${paged.error} />
    ${paged.items === null ? html`<${Loading} what="the audit log" />` : html`<${AuditTable} items=${paged.items} caption="Staff actions, newest first" />`}
    <${Pager} paged=${paged} label="Audit log" />`;
}
