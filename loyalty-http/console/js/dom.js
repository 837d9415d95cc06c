// Builds the page from data without ever parsing HTML: every string becomes a Text node, so
// a sender's `<script>` or `<img onerror>` is shown, never run. (The server's CSP requires
// Trusted Types with no policy, so `innerHTML = string` would throw anyway.)

/** Properties set as properties rather than attributes (their live state). */
const PROPERTIES = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'readOnly', 'required', 'multiple']);

/**
 * `h('button', {type: 'button', onclick}, 'Save')`. Children: strings and numbers (as text),
 * nodes, arrays of them; null, undefined and false are skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (PROPERTIES.has(key)) {
      el[key] = value;
    } else if (key === 'href' && !/^(#|\/)/.test(String(value))) {
      // Links only go to the console's own screens or the server's own paths: a
      // sender-controlled `javascript:` URL can never become a link.
      throw new Error(`refusing link to ${value}`);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let ids = 0;
/** A fresh id, to tie labels to their controls. */
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * A labelled control: `field('Name', h('input', {...}), 'hint')`. The control gets an id and,
 * with a hint, `aria-describedby`.
 */
export function field(label, control, hint) {
  const id = control.id || uid();
  control.id = id;
  const parts = [h('label', { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('p', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

export function checkbox(label, checked, props = {}) {
  const input = h('input', { type: 'checkbox', checked, ...props });
  return { input, node: h('div', { class: 'field' }, h('label', { class: 'inline' }, input, label)) };
}

export function select(options, value, props = {}) {
  return h('select', props, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
}

/** A notice; `kind` is error, success or secret. Errors are announced to screen readers. */
export function notice(kind, ...children) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, children);
}

/** A JSON value pretty-printed as text. */
export function jsonBlock(value, label) {
  return codeBlock(value === undefined ? '' : JSON.stringify(value, null, 2), label);
}

/** A scrollable block of text, reachable by keyboard (so it can be scrolled) and named. */
export function codeBlock(text, label, props = {}) {
  return h('pre', { tabindex: 0, role: 'region', 'aria-label': label, ...props }, text);
}

/** Each cell gets its column's name, which narrow screens show beside it (app.css). */
export function labelCells(headers, row) {
  Array.from(row.children).forEach((cell, i) => { if (headers[i]) cell.dataset.label = headers[i]; });
  return row;
}

export function table(headers, rows, caption) {
  for (const row of [rows].flat()) labelCells(headers, row);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', { class: 'muted' }, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col' }, text)))),
      h('tbody', {}, rows)));
}

export function statusText(status) {
  return h('span', { class: `status-${status}` }, status);
}

export function when(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return h('time', { datetime: iso, title: iso }, Number.isNaN(date.getTime()) ? iso : date.toLocaleString());
}

/** Copies text, with a visible and announced outcome on the button. */
export function copyButton(label, getText) {
  const button = h('button', { type: 'button', class: 'secondary' }, label);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(getText());
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Copy failed: select the text';
    }
    setTimeout(() => { button.textContent = label; }, 2000);
  });
  return button;
}

export function debounce(fn, ms) {
  let timer;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

/**
 * An API failure as the user should see it: the problem's `detail` (with the line and column
 * of a mapping or JSON error, and the path of a field).
 */
export function problemNotice(error, prefix) {
  const problem = error?.problem ?? {};
  const where = [];
  if (problem.line !== undefined) where.push(`line ${problem.line}, column ${problem.column}`);
  if (problem.path) where.push(`at ${problem.path}`);
  return notice('error',
    h('p', {}, prefix ? `${prefix}: ` : '', error?.message ?? String(error)),
    where.length ? h('p', {}, where.join(', ')) : null,
    problem.code ? h('p', { class: 'muted' }, `${error.status} ${problem.code}`) : null);
}

/** `#/p/pid/connectors?x=1` from segments and a query, each part encoded. */
export function href(segments, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') params.set(key, value);
  }
  const tail = params.size ? `?${params}` : '';
  return `#/${segments.map(encodeURIComponent).join('/')}${tail}`;
}
