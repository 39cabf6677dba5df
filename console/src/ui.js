// Small shared pieces of the console: htm bound to Preact, the result line every action shows, the
// pager of every long list, and formatting. Everything a person typed is rendered as text (Preact
// escapes it); nothing here sets innerHTML.
import { h } from "preact";
import { useEffect, useState, useCallback, useRef } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

export function fmtTime(value) {
  if (!value) return "–";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function money(m) {
  return m ? m.formatted : "–";
}

// One line under each action: what happened, or the API's error message and code.
export function Result({ result }) {
  if (!result) return html`<p class="result" role="status" aria-live="polite"></p>`;
  if (result.error) {
    const e = result.error;
    return html`<p class="result error" role="alert" data-code=${e.code || ""}>
      Error: ${e.message}${e.code ? html` <code>(${e.code})</code>` : null}
    </p>`;
  }
  return html`<p class="result ok" role="status" aria-live="polite">${result.ok}</p>`;
}

export function asResult(err) {
  return { error: { message: err.message, code: err.code, status: err.status } };
}

// Loads a page of a keyset-paginated list ({items, next_cursor}); "Next page" follows the cursor,
// "First page" goes back to the start.
export function usePaged(load, deps) {
  const [state, setState] = useState({ items: null, next: null, cursor: null, error: null, page: 1 });
  const fetchPage = useCallback(
    async (cursor, page) => {
      try {
        const data = await load(cursor);
        setState({ items: data.items, next: data.next_cursor, cursor, error: null, page });
      } catch (err) {
        setState((s) => ({ ...s, items: s.items || [], error: asResult(err) }));
      }
    },
    deps,
  );
  useEffect(() => {
    fetchPage(null, 1);
  }, [fetchPage]);
  return {
    ...state,
    reload: () => fetchPage(state.cursor, state.page),
    first: () => fetchPage(null, 1),
    nextPage: () => fetchPage(state.next, state.page + 1),
  };
}

export function Pager({ paged, label }) {
  return html`<nav class="pager" aria-label=${`${label} pages`}>
    <span>Page ${paged.page}</span>
    <button type="button" disabled=${paged.page === 1} onClick=${paged.first}>First page</button>
    <button type="button" disabled=${!paged.next} onClick=${paged.nextPage}>Next page</button>
  </nav>`;
}

export function Loading({ what }) {
  return html`<p class="muted">Loading ${what}…</p>`;
}

export function Field({ label, id, children, hint }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${children}
    ${hint ? html`<small id=${`${id}-hint`} class="muted">${hint}</small>` : null}
  </div>`;
}

// A form whose submit runs ``action`` once at a time (a double click posts once) and shows its result.
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const inFlight = useRef(false); // synchronous: a second click before the re-render is ignored
  const run = async (fn) => {
    if (inFlight.current) return;
    inFlight.current = true;
    setBusy(true);
    setResult(null);
    try {
      const ok = await fn();
      setResult({ ok });
    } catch (err) {
      setResult(asResult(err));
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  };
  return { busy, result, run, setResult };
}

export function Json({ value }) {
  if (value === null || value === undefined) return html`<span class="muted">–</span>`;
  return html`<code class="json">${JSON.stringify(value)}</code>`;
}
