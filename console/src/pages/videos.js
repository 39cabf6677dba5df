// The video catalogue: create, edit, deactivate (and reactivate).
import { useState } from "preact/hooks";
import { admin } from "../api.js";
import { html, Field, Result, Loading, usePaged, useAction, money } from "../ui.js";
import { dollarsToMicros } from "./adjustments.js";

function VideoForm({ video, onDone }) {
  const action = useAction();
  const prefix = video ? `edit-${video.id.slice(0, 8)}` : "new";
  const submit = (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    action.run(async () => {
      const reward = dollarsToMicros(form.get("reward"));
      if (reward === null || reward < 0) throw Object.assign(new Error("The reward is dollars, e.g. 0.0025."), { code: "invalid_reward" });
      const body = { title: form.get("title"), description: form.get("description"), reward_micros: reward };
      let v;
      if (video) v = await admin("PATCH", `/videos/${video.id}`, { body });
      else v = await admin("POST", "/videos", { body: { ...body, duration_seconds: Number(form.get("duration")) } });
      onDone();
      if (!video) ev.target.reset();
      return `${video ? "Saved" : "Created"} “${v.title}” (${v.reward.formatted}).`;
    });
  };
  return html`<form onSubmit=${submit} aria-label=${video ? `Edit ${video.title}` : "Create a video"} class="video-form">
    <${Field} label="Title" id=${`${prefix}-title`}><input id=${`${prefix}-title`} name="title" required maxlength="200" defaultValue=${video ? video.title : ""} /><//>
    <${Field} label="Description" id=${`${prefix}-desc`}><input id=${`${prefix}-desc`} name="description" maxlength="2000" defaultValue=${video ? video.description : ""} /><//>
    ${video ? null : html`<${Field} label="Duration (seconds)" id="new-duration"><input id="new-duration" name="duration" type="number" min="1" max="86400" required /><//>`}
    <${Field} label="Reward (dollars)" id=${`${prefix}-reward`}><input id=${`${prefix}-reward`} name="reward" required inputmode="decimal" defaultValue=${video ? String(video.reward.micros / 1e6) : ""} /><//>
    <button type="submit" disabled=${action.busy}>${video ? "Save" : "Create video"}</button>
    <${Result} result=${action.result} />
  </form>`;
}

export function VideosPage() {
  const [editing, setEditing] = useState(null);
  const toggleAction = useAction();
  const paged = usePaged(() => admin("GET", "/videos"), []);
  const setActive = (v, active) =>
    toggleAction.run(async () => {
      const r = await admin("PATCH", `/videos/${v.id}`, { body: { active } });
      paged.reload();
      return `“${r.title}” is now ${r.active ? "active" : "inactive"}.`;
    });
  return html`<h1>Videos</h1>
    <section aria-labelledby="new-video-h"><h2 id="new-video-h">New video</h2><${VideoForm} onDone=${paged.reload} /></section>
    <section aria-labelledby="catalogue-h"><h2 id="catalogue-h">Catalogue</h2>
      <${Result} result=${toggleAction.result || paged.error} />
      ${paged.items === null
        ? html`<${Loading} what="videos" />`
        : html`<table>
            <caption>Every video, inactive ones too</caption>
            <thead><tr><th scope="col">Title</th><th scope="col">Duration</th><th scope="col">Reward</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
            <tbody>${paged.items.map(
              (v) => html`<tr key=${v.id}><td>${v.title}</td><td>${v.duration_seconds} s</td><td class="num">${money(v.reward)}</td><td>${v.active ? "active" : "inactive"}</td>
                <td>
                  <button type="button" onClick=${() => setEditing(editing === v.id ? null : v.id)} aria-expanded=${editing === v.id} aria-label=${`Edit ${v.title}`}>Edit</button>
                  <button type="button" disabled=${toggleAction.busy} onClick=${() => setActive(v, !v.active)} aria-label=${`${v.active ? "Deactivate" : "Activate"} ${v.title}`}>${v.active ? "Deactivate" : "Activate"}</button>
                  ${editing === v.id ? html`<${VideoForm} video=${v} onDone=${paged.reload} />` : null}
                </td></tr>`,
            )}</tbody>
          </table>`}
    </section>`;
}
