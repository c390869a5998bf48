// Tiny DOM helpers. Text is always inserted as text nodes: nothing from the
// network is ever parsed as HTML.

export const $ = (id) => document.getElementById(id);

/**
 * h('li', {class: 'x', onclick: f, dataset: {k: 'v'}}, 'text', child, ...)
 * Strings and numbers become text nodes; null/false children are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (typeof c === 'string' || typeof c === 'number') el.appendChild(document.createTextNode(String(c)));
    else el.appendChild(c);
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function setText(el, text) {
  el.textContent = text == null ? '' : String(text);
}

export function show(el, visible) {
  el.hidden = !visible;
}
