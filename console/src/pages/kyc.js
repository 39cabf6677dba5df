// KYC review: the queue, a user's documents previewed in the page through their short-lived signed
// URLs (images in <img>, PDFs in an <iframe>), and a decision with a reason.
import { useEffect, useState } from "preact/hooks";
import { admin } from "../api.js";
import { html, Field, Result, Pager, Loading, usePaged, useAction, fmtTime, asResult } from "../ui.js";

function Preview({ doc }) {
  if (!doc.download_url) return html`<p>No file to preview (${doc.status}).</p>`;
  const label = `${doc.kind} document uploaded ${fmtTime(doc.uploaded_at)}`;
  return html`<figure class="preview">
    ${doc.content_type === "application/pdf"
      ? html`<iframe src=${doc.download_url} title=${label} class="pdf" referrerpolicy="no-referrer"></iframe>`
      : html`<img src=${doc.download_url} alt=${label} referrerpolicy="no-referrer" />`}
    <figcaption>${doc.kind}, ${doc.content_type}, ${doc.size_bytes} bytes; link valid until ${fmtTime(doc.download_expires_at)}.
      <a href=${doc.download_url} target="_blank" rel="noopener noreferrer">Open in a new tab</a></figcaption>
  </figure>`;
}

function Documents({ userId }) {
  const [docs, setDocs] = useState(null);
  const [error, setError] = useState(null);
  const action = useAction();
  useEffect(() => {
    setDocs(null);
    admin("GET", `/kyc/${userId}/documents`)
      .then(setDocs)
      .catch((err) => setError(asResult(err)));
  }, [userId]);
  const decide = (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    action.run(async () => {
      const r = await admin("POST", `/kyc/${userId}/decision`, { body: { decision: form.get("decision"), reason: form.get("reason") } });
      return `Decision recorded: ${r.kyc_status} (review ${r.review_id}).`;
    });
  };
  if (error) return html`<${Result} result=${error} />`;
  if (!docs) return html`<${Loading} what="the documents" />`;
  return html`<section aria-labelledby="docs-h">
    <h2 id="docs-h">Documents of <a href=${`#/users/${userId}`}>this user</a></h2>
    ${docs.items.length ? docs.items.map((d) => html`<${Preview} key=${d.id} doc=${d} />`) : html`<p>No documents.</p>`}
    <form onSubmit=${decide} aria-label="KYC decision">
      <fieldset>
        <legend>Decision</legend>
        <label><input type="radio" name="decision" value="verified" required /> Verified</label>
        <label><input type="radio" name="decision" value="rejected" /> Rejected</label>
      </fieldset>
      <${Field} label="Reason" id="kyc-reason"><textarea id="kyc-reason" name="reason" required maxlength="500"></textarea><//>
      <button type="submit" disabled=${action.busy}>Record decision</button>
    </form>
    <${Result} result=${action.result} />
  </section>`;
}

export function KycPage({ args }) {
  const userId = args[0];
  const paged = usePaged((cursor) => admin("GET", "/kyc", { query: { limit: 20, cursor } }), []);
  return html`<h1>KYC review</h1>
    <${Result} result=${paged.error} />
    ${paged.items === null
      ? html`<${Loading} what="the queue" />`
      : paged.items.length
        ? html`<table>
            <caption>Waiting for a decision, longest first</caption>
            <thead><tr><th scope="col">User</th><th scope="col">Name</th><th scope="col">In review since</th><th scope="col">Documents</th><th scope="col">Review</th></tr></thead>
            <tbody>${paged.items.map(
              (i) => html`<tr key=${i.user_id}><td>${i.email}</td><td>${i.display_name}</td><td>${fmtTime(i.in_review_since)}</td><td>${i.documents}</td>
                <td><a href=${`#/kyc/${i.user_id}`} aria-label=${`Review ${i.email}`}>Review</a></td></tr>`,
            )}</tbody>
          </table>`
        : html`<p>The queue is empty.</p>`}
    <${Pager} paged=${paged} label="KYC queue" />
    ${userId ? html`<${Documents} key=${userId} userId=${userId} />` : null}`;
}
