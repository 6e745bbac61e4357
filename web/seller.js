// The seller page: sign in as a seller, list items (GET /seller/items),
// see and change their price and stock, upload images, withdraw them, and
// fulfil orders (GET /seller/orders: ship, deliver), all live.

import { del, get, patch, post, query, session, signIn, signOut, call } from './api.js';
import { confirmButton, field, h, loading, money, mount, problemBox, when } from './dom.js';
import { connect, disconnect, isLive, listen, subscribe, unsubscribe } from './live.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const MAJOR_DIGITS = 2;


/** "9.99" → 999: major units typed by a person, to minor units, without floats. */
export function toMinor(text) {
  const match = /^\s*(\d+)(?:[.,](\d*))?\s*$/.exec(text);
  if (!match) return null;
  const fraction = (match[2] || '').padEnd(MAJOR_DIGITS, '0');
  if (fraction.length > MAJOR_DIGITS) return null;
  return Number(match[1]) * 10 ** MAJOR_DIGITS + Number(fraction || 0);
}

function renderNav() {
  const user = session.user;
  if (!user) mount(nav, h('span', { class: 'muted' }, 'Not signed in'));
  else mount(nav, h('span', { class: 'muted', test: 'user-name' }, user.name || user.email),
    h('button', { class: 'link', test: 'sign-out', onclick: async () => { await signOut(); disconnect(); start(); } }, 'Sign out'));
}

function signInView(signUp = false) {
  const name = signUp ? field('Name', { test: 'name', required: true }) : null;
  const email = field('Email', { type: 'email', test: 'email', required: true, autocomplete: 'email' });
  const password = field('Password', { type: 'password', test: 'password', required: true, autocomplete: signUp ? 'new-password' : 'current-password' });
  const message = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', test: signUp ? 'sign-up-submit' : 'sign-in-submit' }, signUp ? 'Create seller account' : 'Sign in');
  mount(main, h('h1', {}, signUp ? 'Become a seller' : 'Seller sign in'),
    h('form', { onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      mount(message, h('p', { class: 'loading', role: 'status' }, 'Signing in…'));
      try {
        if (signUp) await post('/users', { email: email.input.value, password: password.input.value, name: name.input.value, role: 'seller' });
        const user = await signIn(email.input.value, password.input.value);
        if (user.role !== 'seller') { mount(message, h('div', { class: 'error', role: 'alert' }, 'This account is a buyer account; sellers sign up here.')); submit.disabled = false; return; }
        start();
      } catch (error) { mount(message, problemBox(error)); }
      submit.disabled = false;
    } }, name, email, password, submit, message),
    h('p', {}, h('button', { class: 'link', onclick: () => signInView(!signUp) }, signUp ? 'Have an account? Sign in' : 'New seller? Create an account')));
  email.input.focus();
}

function newItemForm(onCreated) {
  const name = field('Name', { test: 'new-item-name', required: true });
  const description = field('Description', { tag: 'textarea', test: 'new-item-description', required: true, rows: 3 });
  const price = field('Price (e.g. 9.99)', { test: 'new-item-price', required: true, inputmode: 'decimal' });
  const quantity = field('Quantity', { type: 'number', min: 0, step: 1, test: 'new-item-quantity', required: true, value: '1' });
  const currency = field('Currency', { test: 'new-item-currency', value: 'INR', maxlength: 3 });
  const brand = field('Brand', { test: 'new-item-brand' });
  const category = field('Category', { test: 'new-item-category' });
  const tags = field('Tags (comma separated)', { test: 'new-item-tags' });
  const attributes = field('Attributes (JSON object, optional)', { tag: 'textarea', test: 'new-item-attributes', rows: 2, placeholder: '{"color": "black"}' });
  const variants = field('Variants (one a line: sku, price, quantity, attribute=value…)', { tag: 'textarea', test: 'new-item-variants', rows: 3, placeholder: 'MOUSE-BLK, 9.99, 60, color=black' });
  const message = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', test: 'new-item-submit' }, 'Create item');
  const form = h('form', { onsubmit: async (e) => {
    e.preventDefault();
    const minor = toMinor(price.input.value);
    if (minor === null) { mount(message, h('div', { class: 'error', role: 'alert' }, 'Enter the price like 9.99')); return; }
    const body = { name: name.input.value, description: description.input.value, price: minor,
      quantity: Number(quantity.input.value || 0), currency: currency.input.value.trim().toUpperCase() || 'INR' };
    if (brand.input.value.trim()) body.brand = brand.input.value.trim();
    if (category.input.value.trim()) body.category = category.input.value.trim();
    const tagList = tags.input.value.split(',').map((t) => t.trim()).filter(Boolean);
    if (tagList.length) body.tags = tagList;
    try {
      if (attributes.input.value.trim()) body.attributes = JSON.parse(attributes.input.value);
      const lines = variants.input.value.split('\n').map((l) => l.trim()).filter(Boolean);
      if (lines.length) {
        body.variants = lines.map((line) => {
          const [sku, p, q, ...attrs] = line.split(',').map((s) => s.trim());
          const vPrice = toMinor(p);
          if (vPrice === null) throw new Error(`variant ${sku}: enter the price like 9.99`);
          return { sku, price: vPrice, quantity: Number(q || 0),
            attributes: Object.fromEntries(attrs.map((a) => a.split('=').map((s) => s.trim()))) };
        });
      }
    } catch (error) {
      mount(message, h('div', { class: 'error', role: 'alert' }, String(error.message || error))); return;
    }
    submit.disabled = true;
    mount(message, h('p', { class: 'loading', role: 'status' }, 'Creating…'));
    try {
      const item = await post('/items', body);
      form.reset();
      mount(message, h('p', { class: 'notice', test: 'item-created' }, 'Created ', h('a', { href: `/#/item/${encodeURIComponent(item.id)}` }, item.name)));
      onCreated();
    } catch (error) {
      const fields = error.problem?.errors;
      mount(message, problemBox(error), fields ? h('ul', {}, Object.entries(fields).map(([k, v]) => h('li', {}, `${k}: ${v}`))) : null);
    }
    submit.disabled = false;
  } }, name, description, h('div', { class: 'row' }, price, currency, quantity), brand, category, tags, attributes, variants, submit, message);
  return form;
}

function itemRow(item, reload) {
  const message = h('div', { 'aria-live': 'polite' });
  const act = async (fn) => { try { await fn(); reload(); } catch (error) { mount(message, problemBox(error)); } };
  const price = field('New price', { inputmode: 'decimal', test: 'edit-price', value: (item.price / 100).toFixed(2) });
  const delta = field('Stock change (+/-)', { type: 'number', step: 1, test: 'stock-delta', value: '0' });
  const drop = h('div', { class: 'drop', tabindex: 0, test: 'image-drop' }, 'Drop a PNG, JPEG or WebP image here, or ',
    h('input', { type: 'file', accept: 'image/png,image/jpeg,image/webp', test: 'image-file', 'aria-label': `Image for ${item.name}`, onchange: (e) => upload(e.target.files[0]) }));
  const upload = (file) => file && act(() => call('POST', `/items/${encodeURIComponent(item.id)}/images`, file, { 'Content-Type': file.type }));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); upload(e.dataTransfer.files[0]); });
  // A compact summary; the changes fold away under "Edit" (open while
  // the item has no image, since that is the first thing to add).
  const edit = h('details', { class: 'edit', open: !item.images?.length }, h('summary', { test: 'edit-item' }, 'Edit price, stock, image'),
    h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); const minor = toMinor(price.input.value); if (minor === null) { mount(message, h('div', { class: 'error', role: 'alert' }, 'Enter the price like 9.99')); return; } act(() => patch(`/items/${encodeURIComponent(item.id)}`, { price: minor })); } },
      price, h('button', { type: 'submit', class: 'secondary' }, 'Set price')),
    item.variants?.length ? null : h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); act(() => post(`/items/${encodeURIComponent(item.id)}/stock`, { delta: Number(delta.input.value) })); } },
      delta, h('button', { type: 'submit', class: 'secondary' }, 'Adjust stock')),
    item.variants?.length ? h('ul', {}, item.variants.map((v) => h('li', {}, `${v.sku || v.variantId}: ${money(v.price, item.currency)}, ${v.available} available`,
      ' ', h('button', { class: 'link', onclick: () => act(() => post(`/items/${encodeURIComponent(item.id)}/stock`, { delta: 1, variantId: v.variantId })) }, '+1'),
      ' ', h('button', { class: 'link', onclick: () => act(() => post(`/items/${encodeURIComponent(item.id)}/stock`, { delta: -1, variantId: v.variantId })) }, '−1')))) : null,
    drop);
  return h('li', { class: 'card seller-card', test: 'seller-item', 'data-item-id': item.id },
    item.images?.length ? h('img', { src: item.images[0], alt: '', test: 'seller-item-image' }) : h('div', { class: 'thumb' }),
    h('div', { class: 'summary' },
      h('strong', { test: 'seller-item-name' }, item.name),
      h('span', {}, money(item.price, item.currency)),
      h('span', {}, h('span', { test: 'seller-item-available' }, String(item.available)), ` available of ${item.quantity}`),
      h('span', { class: item.status === 'active' ? 'muted' : 'status' }, item.status === 'active' ? 'Listed' : 'Withdrawn')),
    edit,
    item.status === 'active'
      ? confirmButton('Withdraw', 'Yes, withdraw it', () => act(() => del(`/items/${encodeURIComponent(item.id)}`)), 'withdraw')
      : h('button', { class: 'secondary', onclick: () => act(() => patch(`/items/${encodeURIComponent(item.id)}`, { status: 'active' })) }, 'Re-list'),
    message);
}

// The item topics the list follows (stock changes, live).
const followed = new Set();

function follow(items) {
  for (const topic of followed) unsubscribe(topic);
  followed.clear();
  for (const item of items) { const topic = `item:${item.id}`; followed.add(topic); subscribe(topic); }
}

/** The seller's items, a page at a time (`more` by cursor), by status. */
async function loadItems(box, status = '') {
  const filter = field('Show', { tag: 'select', test: 'seller-item-filter', onchange: (e) => loadItems(box, e.target.value) });
  for (const [value, label] of [['', 'All'], ['active', 'Listed'], ['inactive', 'Withdrawn']]) filter.input.append(h('option', { value, selected: value === status }, label));
  const list = h('ul', { class: 'grid' });
  const more = h('div');
  const shown = [];
  mount(box, filter, list, more);
  const reload = () => loadItems(box, status);
  const next = async (cursor) => {
    const page = await loading(more, get(`/seller/items${query({ status, cursor, size: 24 })}`));
    shown.push(...page.items);
    follow(shown);
    list.append(...page.items.map((item) => itemRow(item, reload)));
    if (!shown.length) mount(more, h('p', {}, 'No items yet: create one below.'));
    else if (page.nextCursor) mount(more, h('button', { class: 'secondary', test: 'more-items', onclick: () => next(page.nextCursor).catch((e) => mount(more, problemBox(e))) }, 'More items'));
    else mount(more);
  };
  await next(undefined);
}

/** One order to fulfil, with ship and deliver for the seller's part. */
function orderCard(order, reload) {
  const mine = order.fulfilment?.[0]?.status || 'PENDING';
  const message = h('div', { 'aria-live': 'polite' });
  const act = (verb) => async () => {
    try { await post(`/orders/${encodeURIComponent(order.id)}/${verb}`); reload(); } catch (error) { mount(message, problemBox(error)); }
  };
  const a = order.shippingAddress;
  return h('li', { class: 'card', test: 'seller-order' },
    h('span', {}, 'Order ', h('strong', { test: 'seller-order-status' }, order.status), ` · your part: ${mine}`),
    h('span', { class: 'muted' }, when(order.createdAt), ' · ', h('code', {}, order.id)),
    h('ul', {}, order.lines.map((l) => h('li', {}, `${l.name} × ${l.quantity} (${money(l.lineTotal, order.currency)})`))),
    a ? h('address', {}, [a.line1, a.line2, a.city, a.state, a.postalCode, a.country].filter(Boolean).join(', ')) : null,
    h('div', { class: 'row' },
      h('button', { test: 'ship', disabled: !(order.status === 'CONFIRMED' && mine === 'PENDING'), onclick: act('ship') }, 'Ship'),
      h('button', { test: 'deliver', disabled: mine !== 'SHIPPED', onclick: act('deliver') }, 'Deliver')),
    message);
}

/** The orders to fulfil, newest first, by status, "more" by cursor. */
async function loadOrders(box, status = '') {
  orderFilter = status;
  const filter = field('Status', { tag: 'select', test: 'seller-order-filter', onchange: (e) => loadOrders(box, e.target.value) });
  for (const s of ['', 'CONFIRMED', 'SHIPPED', 'DELIVERED', 'PAYMENT_PENDING', 'CANCELLED']) filter.input.append(h('option', { value: s, selected: s === status }, s || 'All'));
  const list = h('ul', { class: 'grid' });
  const more = h('div');
  let shown = 0;
  mount(box, filter, list, more);
  const reload = () => loadOrders(box, status);
  const next = async (cursor) => {
    const page = await loading(more, get(`/seller/orders${query({ status, cursor, size: 20 })}`));
    shown += page.items.length;
    list.append(...page.items.map((order) => orderCard(order, reload)));
    if (!shown) mount(more, h('p', {}, 'No orders to fulfil.'));
    else if (page.nextCursor) mount(more, h('button', { class: 'secondary', test: 'more-orders', onclick: () => next(page.nextCursor).catch((e) => mount(more, problemBox(e))) }, 'More orders'));
    else mount(more);
  };
  await next(undefined);
}

function dashboard() {
  const items = h('section', { 'aria-live': 'polite' });
  const orders = h('section', { 'aria-live': 'polite' });
  // Desktop: the shop on the left, the new-item form beside it; phones
  // stack them, with a link down to the form.
  mount(main, h('h1', {}, 'Your shop'),
    h('p', { class: 'jump' }, h('a', { href: '#new-item' }, 'List a new item')),
    h('div', { class: 'seller-layout' },
      h('div', {}, h('h2', {}, 'Orders to fulfil'), orders, h('h2', {}, 'Your items'), items),
      h('aside', { id: 'new-item', 'aria-labelledby': 'new-item-title' }, h('h2', { id: 'new-item-title' }, 'New item'), newItemForm(() => loadItems(items)))));
  loadItems(items).catch((error) => mount(items, problemBox(error)));
  loadOrders(orders).catch(() => {});
  connect();
  stopListening();
  // A seller's socket hears no buyer's order updates, but every sale,
  // payment, cancellation and expiry moves the stock of the seller's
  // items, whose topics the page follows: each such change refreshes the
  // orders to fulfil (at most once a half second). Without a socket, it
  // polls.
  let pending = 0;
  const refresh = () => { clearTimeout(pending); pending = setTimeout(() => loadOrders(orders, orderFilter).catch(() => {}), 500); };
  clearInterval(polling);
  polling = setInterval(() => { if (!isLive()) refresh(); }, 10000);
  stopListening = listen((m) => {
    if (m.type === 'order.updated' || m.type === 'notification') refresh();
    if (m.type === 'stock.changed') {
      refresh();
      for (const row of items.querySelectorAll(`[data-item-id="${CSS.escape(m.itemId)}"] [data-test="seller-item-available"]`)) row.textContent = String(m.available);
    }
  });
}

let stopListening = () => {};
let polling = 0;
// The status the seller chose for the orders list (kept across refreshes).
let orderFilter = '';

function start() {
  renderNav();
  if (session.user?.role === 'seller') dashboard();
  else signInView();
}

window.addEventListener('agora:signed-out', start);
start();
