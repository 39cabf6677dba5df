// Feature flags (and, once the trust-and-safety rules land, their rules): change one, see the result.
import { admin } from "../api.js";
import { html, Field, Result, Loading, usePaged, useAction, fmtTime } from "../ui.js";

function FlagForm({ flag, onDone }) {
  const action = useAction();
  const id = flag ? `flag-${flag.key}` : "flag-new";
  const submit = (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    action.run(async () => {
      const key = flag ? flag.key : String(form.get("key")).trim();
      const r = await admin("POST", `/flags/${encodeURIComponent(key)}`, {
        body: { enabled: form.get("enabled") === "on", rollout_percent: Number(form.get("rollout")), description: form.get("description") || undefined },
      });
      onDone();
      return `${r.key}: ${r.enabled ? "on" : "off"} for ${r.rollout_percent}%.`;
    });
  };
  return html`<form class="inline" onSubmit=${submit} aria-label=${flag ? `Flag ${flag.key}` : "New flag"}>
    ${flag ? html`<strong>${flag.key}</strong>` : html`<${Field} label="Key" id=${`${id}-key`}><input id=${`${id}-key`} name="key" required pattern="[a-z0-9_.-]{1,64}" /><//>`}
    <label><input type="checkbox" name="enabled" defaultChecked=${flag ? flag.enabled : false} /> Enabled</label>
    <${Field} label="Rollout %" id=${`${id}-rollout`}><input id=${`${id}-rollout`} name="rollout" type="number" min="0" max="100" required defaultValue=${flag ? flag.rollout_percent : 0} /><//>
    <${Field} label="Description" id=${`${id}-desc`}><input id=${`${id}-desc`} name="description" maxlength="500" defaultValue=${flag ? flag.description : ""} /><//>
    <button type="submit" disabled=${action.busy}>Save</button>
    ${flag ? html`<small class="muted">updated ${fmtTime(flag.updated_at)}</small>` : null}
    <${Result} result=${action.result} />
  </form>`;
}

export function FlagsPage() {
  const paged = usePaged(() => admin("GET", "/flags"), []);
  return html`<h1>Feature flags</h1>
    <${Result} result=${paged.error} />
    ${paged.items === null ? html`<${Loading} what="flags" />` : paged.items.map((f) => html`<${FlagForm} key=${f.key} flag=${f} onDone=${paged.reload} />`)}
    <h2>New flag</h2>
    <${FlagForm} onDone=${paged.reload} />`;
}
