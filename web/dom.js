// DOM helpers. Every piece of data reaches the page as text (textContent,
// attribute values), never as markup: a name like <img onerror=...> shows
// those characters and runs nothing.

/** Creates an element: h('a', {href: '#/', dataset: {test: 'x'}}, 'text', child). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'test') el.dataset.test = value;
    else if (key === 'class') el.className = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const formats = new Map();

/** Minor units of `currency` as money text: 999 INR → ₹9.99. */
export function money(minor, currency = 'INR') {
  let format = formats.get(currency);
  if (!format) {
    try {
      format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
    } catch {
      format = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'INR' });
    }
    formats.set(currency, format);
  }
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(Number(minor) / 10 ** digits);
}

/** A labelled field: returns the wrapper; the input is `.input`. */
export function field(label, props = {}) {
  const id = props.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  const input = props.tag === 'textarea' || props.tag === 'select'
    ? h(props.tag, { ...props, tag: undefined, id })
    : h('input', { ...props, id });
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label), input);
  wrap.input = input;
  return wrap;
}

/** A problem (or any error) as a visible message. */
export function problemBox(error) {
  const title = error?.problem?.title || 'Something went wrong';
  const detail = error?.problem?.detail || error?.message || '';
  return h('div', { class: 'error', role: 'alert', test: 'error' },
    h('strong', {}, title), detail ? h('span', {}, ` ${detail}`) : null);
}

/** Shows a loading line in `el` while `promise` runs, then its problem if it fails. */
export async function loading(el, promise) {
  mount(el, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  try {
    const value = await promise;
    el.replaceChildren();
    return value;
  } catch (error) {
    mount(el, problemBox(error));
    throw error;
  }
}

export const number = (n) => new Intl.NumberFormat().format(n);
/** A time as people read it ("6 Dec 2026, 18:17"), never an ambiguous 12/6/2026. */
export const when = (at) => (at ? new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '');
/** A day as people read it ("6 Dec 2026"). */
export const day = (at) => (at ? new Date(at).toLocaleDateString(undefined, { dateStyle: 'medium' }) : '');

/**
 * A button that asks again in place ("Cancel order" → "Yes, cancel order")
 * instead of a blocking confirm() dialog, which keyboard users and
 * WebDriver tests both handle badly.
 */
export function confirmButton(label, confirmLabel, action, test) {
  const button = h('button', { type: 'button', class: 'secondary', test });
  let armed = false;
  const reset = () => { armed = false; button.textContent = label; };
  reset();
  button.addEventListener('click', async () => {
    if (!armed) { armed = true; button.textContent = confirmLabel; return; }
    button.disabled = true;
    try { await action(); } finally { button.disabled = false; reset(); }
  });
  button.addEventListener('blur', () => { if (armed && !button.disabled) reset(); });
  return button;
}
