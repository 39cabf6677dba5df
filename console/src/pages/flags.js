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

// The trust-and-safety rules (thresholds, windows, weights); each is enforced by its feature flag.
function RuleForm({ rule, onDone }) {
  const action = useAction();
  const id = `rule-${rule.name}`;
  const submit = (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    action.run(async () => {
      const r = await admin("PUT", `/risk/rules/${encodeURIComponent(rule.name)}`, {
        body: { threshold: Number(form.get("threshold")), window_minutes: Number(form.get("window")), weight: Number(form.get("weight")) },
      });
      onDone();
      return `${r.name}: threshold ${r.threshold} in ${r.window_minutes} min, weight ${r.weight}.`;
    });
  };
  return html`<form class="inline" onSubmit=${submit} aria-label=${`Rule ${rule.name}`}>
    <strong>${rule.name}</strong> <small class="muted">${rule.description} (flag <code>${rule.flag}</code>)</small>
    <${Field} label="Threshold" id=${`${id}-threshold`}><input id=${`${id}-threshold`} name="threshold" type="number" min="1" required defaultValue=${rule.threshold} /><//>
    <${Field} label="Window (minutes)" id=${`${id}-window`}><input id=${`${id}-window`} name="window" type="number" min="1" required defaultValue=${rule.window_minutes} /><//>
    <${Field} label="Weight" id=${`${id}-weight`}><input id=${`${id}-weight`} name="weight" type="number" min="0" max="100" required defaultValue=${rule.weight} /><//>
    <button type="submit" disabled=${action.busy}>Save rule</button>
    <${Result} result=${action.result} />
  </form>`;
}

function Rules() {
  const paged = usePaged(() => admin("GET", "/risk/rules").then((r) => ({ items: r.items, next_cursor: null })), []);
  if (paged.error) return html`<${Result} result=${paged.error} />`;
  return html`<h2>Risk rules</h2>
    ${paged.items === null ? html`<${Loading} what="rules" />` : paged.items.map((r) => html`<${RuleForm} key=${r.name} rule=${r} onDone=${paged.reload} />`)}`;
}

export function FlagsPage() {
  const paged = usePaged(() => admin("GET", "/flags"), []);
  return html`<h1>Feature flags and rules</h1>
    <${Result} result=${paged.error} />
    ${paged.items === null ? html`<${Loading} what="flags" />` : paged.items.map((f) => html`<${FlagForm} key=${f.key} flag=${f} onDone=${paged.reload} />`)}
    <h2>New flag</h2>
    <${FlagForm} onDone=${paged.reload} />
    <${Rules} />`;
}
