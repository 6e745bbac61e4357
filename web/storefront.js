// The storefront: a single-page app with hash routes (#/search?term=,
// #/item/{id}, #/cart, #/checkout, #/orders, #/order/{id}, #/signin,
// #/signup, #/notifications, #/wishlist). Everything goes through the
// public API; data is always rendered as text.

import { ApiError, call, del, get, patch, post, put, query, session, signIn, signOut } from './api.js';
import { confirmButton, field, h, loading, money, mount, number, problemBox, when } from './dom.js';
import { connect, disconnect, isLive, listen, subscribe, unsubscribe } from './live.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let cleanup = [];

// ---- header -------------------------------------------------------------

let unread = 0;

async function refreshCartCount() {
  let units = 0;
  if (session.token || session.cartToken) {
    try {
      const cart = await get('/cart');
      units = cart.lines.reduce((n, line) => n + line.quantity, 0);
    } catch { units = 0; }
  }
  const count = document.querySelector('[data-test="cart-count"]');
  if (count) count.textContent = `${units} ${units === 1 ? 'item' : 'items'}`;
}

async function refreshUnread() {
  if (!session.token) return;
  try {
    const page = await get('/notifications?size=100');
    unread = page.items.filter((n) => !n.read).length;
  } catch { unread = 0; }
  const badge = document.getElementById('unread');
  if (badge) badge.textContent = String(unread);
}

function renderNav() {
  const user = session.user;
  const cart = h('a', { href: '#/cart', test: 'cart-link' }, 'Cart (',
    h('span', { test: 'cart-count' }, '0 items'), ')');
  if (!user) {
    mount(nav, h('a', { href: '#/signin', test: 'sign-in-link' }, 'Sign in'),
      h('a', { href: '#/signup' }, 'Sign up'), cart);
  } else {
    mount(nav,
      h('span', { class: 'muted', test: 'user-name' }, user.name || user.email),
      h('a', { href: '#/orders' }, 'Orders'),
      h('a', { href: '#/wishlist' }, 'Wishlist'),
      h('a', { href: '#/notifications', test: 'notifications-link' }, 'Notifications ',
        h('span', { class: 'badge', id: 'unread', test: 'unread-count' }, String(unread))),
      cart,
      h('button', { class: 'link', test: 'sign-out', onclick: async () => {
        await signOut(); disconnect(); renderNav(); location.hash = '#/';
      } }, 'Sign out'));
    refreshUnread();
  }
  refreshCartCount();
}

// Autocomplete: suggestions for the last typed prefix, through a datalist.
const searchInput = document.getElementById('search-input');
const suggestions = document.getElementById('suggestions');
let suggestTimer = 0;
searchInput.addEventListener('input', () => {
  clearTimeout(suggestTimer);
  const q = searchInput.value.trim();
  if (!q) { suggestions.replaceChildren(); return; }
  suggestTimer = setTimeout(async () => {
    try {
      const answer = await get(`/items/suggest${query({ q, size: 8 })}`);
      mount(suggestions, answer.suggestions.map((s) => h('option', { value: s })));
    } catch { suggestions.replaceChildren(); }
  }, 150);
});
document.getElementById('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  location.hash = `#/search${query({ term: searchInput.value.trim() })}`;
});

// ---- pieces ----------------------------------------------------------------

function itemCard(item, test) {
  return h('li', { class: 'card', test },
    h('a', { href: `#/item/${encodeURIComponent(item.id)}`, test: 'result-link' },
      item.image ? h('img', { src: item.image, alt: '' }) : h('div', { class: 'thumb' }),
      h('span', { test: 'result-name' }, item.name)),
    h('span', { class: 'muted' }, [item.brand, item.category].filter(Boolean).join(' · ')),
    h('span', {}, money(item.price, item.currency)),
    h('span', { class: 'muted' }, item.available > 0 ? `${number(item.available)} available` : 'Out of stock'));
}

function every(ms, fn) {
  const timer = setInterval(fn, ms);
  cleanup.push(() => clearInterval(timer));
}

function onLive(fn) {
  cleanup.push(listen(fn));
}

// ---- pages -----------------------------------------------------------------

async function homePage() {
  const box = h('section', { 'aria-live': 'polite' });
  mount(main, h('h1', {}, 'Welcome to Agora'), h('h2', {}, 'Recommended for you'), box);
  const answer = await loading(box, get('/recommendations?size=12'));
  if (!answer.items.length) { mount(box, h('p', {}, 'Nothing to recommend yet: try a search.')); return; }
  mount(box, h('p', { class: 'muted' }, answer.strategy === 'personalized' ? 'Picked from your history' : 'Popular now'),
    h('ul', { class: 'grid' }, answer.items.map((item) => itemCard(item, 'recommendation'))));
}

async function searchPage(params) {
  searchInput.value = params.get('term') || '';
  const filters = Object.fromEntries(params.entries());
  const go = (changes) => {
    const next = { ...filters, ...changes };
    location.hash = `#/search${query(next)}`;
  };
  const side = h('aside', { 'aria-label': 'Filters' });
  const results = h('section', { 'aria-live': 'polite' });
  mount(main, h('h1', {}, filters.term ? `Results for “${filters.term}”` : 'All items'), h('div', { class: 'layout' }, side, results));
  const search = (cursor) => get(`/items${query({ ...filters, cursor, size: 20 })}`);
  const page = await loading(results, search());

  const facetSelect = (name, label) => {
    const f = field(label, { tag: 'select', test: `facet-${name}`, onchange: (e) => go({ [name]: e.target.value }) });
    f.input.append(h('option', { value: '' }, 'Any'));
    const counts = page.facets?.[name] || {};
    const values = Object.keys(counts);
    if (filters[name] && !values.includes(filters[name])) values.unshift(filters[name]);
    for (const value of values) {
      f.input.append(h('option', { value, selected: value === filters[name] }, `${value} (${counts[value] ?? 0})`));
    }
    return f;
  };
  const sort = field('Sort', { tag: 'select', test: 'sort', onchange: (e) => go({ sort: e.target.value }) });
  for (const [value, label] of [['', 'Default'], ['relevance', 'Relevance'], ['price_asc', 'Price: low to high'], ['price_desc', 'Price: high to low'], ['newest', 'Newest']]) {
    sort.input.append(h('option', { value, selected: (filters.sort || '') === value }, label));
  }
  const toMinor = (v) => (v === '' ? '' : String(Math.round(Number(v) * 100)));
  const toMajor = (v) => (v ? String(Number(v) / 100) : '');
  const min = field('Min price', { type: 'number', min: 0, step: '0.01', value: toMajor(filters.minPrice), test: 'min-price' });
  const max = field('Max price', { type: 'number', min: 0, step: '0.01', value: toMajor(filters.maxPrice), test: 'max-price' });
  const stock = h('input', { type: 'checkbox', id: 'in-stock', test: 'in-stock', checked: filters.inStock === 'true',
    onchange: (e) => go({ inStock: e.target.checked ? 'true' : '' }) });
  // Filters fold away on phones, where they would push the results down.
  const filterBox = h('details', { open: window.innerWidth > 700 }, h('summary', {}, 'Filters'));
  side.append(filterBox);
  mount(filterBox, h('summary', {}, 'Filters'), facetSelect('category', 'Category'), facetSelect('brand', 'Brand'),
    h('form', { onsubmit: (e) => { e.preventDefault(); go({ minPrice: toMinor(min.input.value), maxPrice: toMinor(max.input.value) }); } },
      min, max, h('button', { type: 'submit', class: 'secondary' }, 'Apply price')),
    h('div', { class: 'field' }, h('label', { for: 'in-stock' }, stock, ' In stock only')), sort);

  const list = h('ul', { class: 'grid' });
  const more = h('button', { class: 'secondary', test: 'more' }, 'More results');
  // `totalExact` is false only past 10,000 matches (absent otherwise).
  const exact = page.totalExact !== false;
  const total = exact ? number(page.total) : `${number(Math.max(page.total, 10000))}+`;
  mount(results, h('p', { test: 'result-count' }, `${total} ${exact && page.total === 1 ? 'item' : 'items'}`), list);
  let cursor = page.nextCursor;
  const show = (items) => list.append(...items.map((item) => itemCard(item, 'search-result')));
  show(page.items);
  if (!page.items.length) results.append(h('p', {}, 'No items match. Check the spelling or remove a filter.'));
  if (cursor) results.append(more);
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      const next = await search(cursor);
      show(next.items);
      cursor = next.nextCursor;
      if (!cursor) more.remove();
    } catch (error) { results.append(problemBox(error)); }
    more.disabled = false;
  });
}

async function itemPage(id) {
  const box = h('section');
  mount(main, box);
  let item = await loading(box, get(`/items/${encodeURIComponent(id)}`));
  let variant = item.variants[0] || null;
  const name = h('h1', { test: 'item-name' }, item.name);
  const price = h('p', { class: 'price', test: 'item-price' });
  const available = h('span', { test: 'item-available' });
  const message = h('div', { 'aria-live': 'polite' });
  const render = () => {
    name.textContent = item.name;
    if (variant) variant = item.variants.find((v) => v.variantId === variant.variantId) || variant;
    price.textContent = money(variant ? variant.price : item.price, item.currency);
    available.textContent = String(variant ? variant.available : item.available);
  };
  const picker = item.variants.length
    ? field('Variant', { tag: 'select', test: 'variant-picker', onchange: (e) => {
      variant = item.variants.find((v) => v.variantId === e.target.value); render();
    } })
    : null;
  if (picker) {
    for (const v of item.variants) {
      const label = Object.entries(v.attributes || {}).map(([k, val]) => `${k}: ${typeof val === 'object' ? JSON.stringify(val) : val}`).join(', ') || v.sku || v.variantId;
      picker.input.append(h('option', { value: v.variantId }, label));
    }
  }
  const addToCart = h('button', { test: 'add-to-cart', onclick: async () => {
    addToCart.disabled = true;
    try {
      const cart = await get('/cart').catch(() => ({ lines: [] }));
      const line = cart.lines.find((l) => l.itemId === item.id && (!variant || l.variantId === variant.variantId));
      const body = { itemId: item.id, quantity: (line?.quantity || 0) + 1 };
      if (variant) body.variantId = variant.variantId;
      const answer = await patch('/cart', body);
      if (answer.cartToken && !session.token) session.cartToken = answer.cartToken;
      mount(message, h('p', { class: 'notice', test: 'added' }, 'Added to your cart. ', h('a', { href: '#/cart' }, 'View cart')));
      refreshCartCount();
    } catch (error) { mount(message, problemBox(error)); }
    addToCart.disabled = false;
  } }, 'Add to cart');
  const wish = h('button', { class: 'secondary', test: 'add-to-wishlist', onclick: async () => {
    if (!session.token) { location.hash = '#/signin'; return; }
    try { await put(`/wishlist/${encodeURIComponent(item.id)}`); mount(message, h('p', { class: 'notice' }, 'Saved to your wishlist.')); } catch (error) { mount(message, problemBox(error)); }
  } }, 'Add to wishlist');
  const images = item.images.length
    ? h('div', {}, item.images.map((src) => h('img', { src, alt: item.name, class: 'thumb' })))
    : h('div', { class: 'thumb', role: 'img', 'aria-label': 'No image' });
  const attributes = Object.entries(item.attributes || {});
  const related = h('section', {}, h('h2', {}, 'Related items'));
  mount(box, h('div', { class: 'item' }, images, h('div', {},
    name, item.brand ? h('p', { class: 'muted', test: 'item-brand' }, item.brand) : null,
    price, h('p', {}, available, ' available'),
    picker, h('div', { class: 'row' }, addToCart, wish), message,
    h('p', { test: 'item-description' }, item.description),
    attributes.length ? h('dl', {}, attributes.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))])) : null)),
  related);
  render();

  const reload = async () => {
    try { item = await get(`/items/${encodeURIComponent(id)}`); render(); } catch { /* keep the last view */ }
  };
  // Live stock: the item's topic when signed in; guests poll.
  const topic = `item:${item.id}`;
  subscribe(topic);
  cleanup.push(() => unsubscribe(topic));
  onLive((m) => {
    if (m.type === 'stock.changed' && m.itemId === item.id) {
      if (!item.variants.length || (variant && m.variantId === variant.variantId)) {
        available.textContent = String(m.available);
      }
      reload();
    }
  });
  every(2000, () => { if (!isLive()) reload(); });

  get(`/items/${encodeURIComponent(item.id)}/related?size=6`).then((answer) => {
    if (answer.items.length) related.append(h('ul', { class: 'grid' }, answer.items.map((i) => itemCard(i, 'related-item'))));
    else related.append(h('p', { class: 'muted' }, 'Nothing related yet.'));
  }).catch((error) => related.append(problemBox(error)));
}

async function cartPage() {
  const box = h('section', { 'aria-live': 'polite' });
  mount(main, h('h1', {}, 'Your cart'), box);
  if (!session.token && !session.cartToken) { mount(box, h('p', { test: 'empty-cart' }, 'Your cart is empty.')); return; }
  const cart = await loading(box, get('/cart'));
  if (!cart.lines.length) { mount(box, h('p', { test: 'empty-cart' }, 'Your cart is empty.')); return; }
  const setQuantity = async (line, quantity) => {
    try {
      const body = { itemId: line.itemId, variantId: line.variantId, quantity };
      await patch('/cart', body);
      refreshCartCount();
      cartPage();
    } catch (error) { box.prepend(problemBox(error)); }
  };
  const rows = cart.lines.map((line) => {
    const qty = h('input', { type: 'number', min: 0, max: 1000, value: String(line.quantity), 'aria-label': `Quantity of ${line.name}`, test: 'line-quantity', class: 'qty' });
    qty.addEventListener('change', () => setQuantity(line, Number(qty.value)));
    const changed = line.unitPrice !== line.currentPrice
      ? h('div', { class: 'error', test: 'price-changed' }, `Price changed from ${money(line.unitPrice, cart.currency)} to ${money(line.currentPrice, cart.currency)}`)
      : null;
    return h('tr', { test: 'cart-line' },
      h('td', {}, h('a', { href: `#/item/${encodeURIComponent(line.itemId)}` }, line.name), changed),
      h('td', {}, qty),
      h('td', { class: 'num' }, money(line.currentPrice, cart.currency)),
      h('td', { class: 'num', test: 'line-total' }, money(line.lineTotal, cart.currency)),
      h('td', {}, h('button', { class: 'secondary', test: 'remove-line', onclick: () => setQuantity(line, 0) }, 'Remove')));
  });
  const sum = (label, value, test) => h('tr', {}, h('th', { colspan: 3 }, label), h('td', { class: 'num', test }, money(value, cart.currency)), h('td'));
  mount(box, h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Item'), h('th', {}, 'Quantity'), h('th', { class: 'num' }, 'Price'), h('th', { class: 'num' }, 'Total'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')))),
    h('tbody', {}, rows),
    h('tfoot', {}, sum('Subtotal', cart.subtotal, 'subtotal'), sum('Tax', cart.tax, 'tax'), sum('Shipping', cart.shipping, 'shipping'), sum('Total', cart.total, 'cart-total')))),
  h('p', {}, h('button', { test: 'checkout', onclick: () => { location.hash = session.token ? '#/checkout' : '#/signin?next=checkout'; } }, 'Checkout')),
  session.token ? null : h('p', { class: 'muted' }, 'You will sign in before paying; your cart comes with you.'));
}

const TEST_CARDS = [
  ['4242 4242 4242 4242', 'approved'],
  ['4000 0000 0000 0002', 'declined'],
  ['4000 0000 0000 0119', 'gateway error, retried, then declined if it persists'],
  ['4000 0000 0000 3155', 'never answers: the order waits, then expires'],
];

async function checkoutPage() {
  if (!session.token) { location.hash = '#/signin?next=checkout'; return; }
  const box = h('section');
  mount(main, h('h1', {}, 'Checkout'), box);
  const [cart, me] = await loading(box, Promise.all([get('/cart'), get('/users/me').catch(() => ({}))]));
  if (!cart.lines.length) { mount(box, h('p', {}, 'Your cart is empty.')); return; }
  const saved = me.addresses?.[0] || {};
  const line1 = field('Address', { test: 'address-line1', required: true, autocomplete: 'address-line1', value: saved.line1 || '' });
  const city = field('City', { test: 'address-city', required: true, autocomplete: 'address-level2', value: saved.city || '' });
  const postal = field('Postal code', { test: 'address-postal-code', required: true, autocomplete: 'postal-code', value: saved.postalCode || '' });
  const country = field('Country', { test: 'address-country', required: true, autocomplete: 'country', value: saved.country || 'IN' });
  const card = field('Card number', { test: 'card-number', required: true, inputmode: 'numeric', autocomplete: 'cc-number', 'aria-describedby': 'test-cards' });
  const help = h('details', { id: 'test-cards' }, h('summary', {}, 'Test cards (simulated gateway)'),
    h('table', {}, h('tbody', {}, TEST_CARDS.map(([n, outcome]) => h('tr', {}, h('td', {}, n), h('td', {}, outcome))))));
  let amount = cart.total;
  const totalLine = h('p', { class: 'price', test: 'checkout-total' }, `Total ${money(amount, cart.currency)}`);
  const message = h('div', { 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', test: 'place-order' }, 'Place order');
  // One key per attempt: a double click or a retry of the same attempt
  // sends the same key, so it never orders twice; a changed body (a new
  // amount after PRICE_CHANGED) is a new attempt.
  let key = crypto.randomUUID();
  let busy = false;
  const form = h('form', { onsubmit: async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true; button.disabled = true;
    mount(message, h('p', { class: 'loading', role: 'status' }, 'Placing your order…'));
    const body = { cartId: cart.id, amount, currency: cart.currency,
      paymentInfo: { paymentType: 'CARD', cardNo: card.input.value.trim() },
      shippingAddress: { line1: line1.input.value.trim(), city: city.input.value.trim(), postalCode: postal.input.value.trim(), country: country.input.value.trim() } };
    try {
      const answer = await call('POST', '/checkout', body, { 'Idempotency-Key': key });
      const order = answer.body;
      refreshCartCount();
      if (order.status === 'PAYMENT_FAILED') {
        key = crypto.randomUUID();
        mount(message, h('div', { class: 'error', role: 'alert', test: 'declined' }, 'Your card was declined. Try another card. ', h('a', { href: `#/order/${encodeURIComponent(order.orderId)}` }, 'See the order')));
      } else {
        location.hash = `#/order/${encodeURIComponent(order.orderId)}`;
      }
    } catch (error) {
      const p = error.problem || {};
      if (error instanceof ApiError && error.status !== 0 && p.code !== 'REQUEST_IN_PROGRESS') key = crypto.randomUUID();
      if (p.code === 'PRICE_CHANGED') {
        const fresh = await get('/cart').catch(() => null);
        amount = p.expectedAmount ?? fresh?.total ?? amount;
        totalLine.textContent = `Total ${money(amount, cart.currency)}`;
        mount(message, h('div', { class: 'error', role: 'alert', test: 'price-changed' },
          `Prices changed since you added the items: the total is now ${money(amount, cart.currency)}. Press “Place order” again to pay the new total.`));
      } else if (p.code === 'OUT_OF_STOCK') {
        const short = p.lines || p.shortLines || p.items || [];
        const names = short.map((s) => {
          const line = cart.lines.find((l) => l.itemId === s.itemId && (!s.variantId || l.variantId === s.variantId));
          return `${line?.name || s.itemId}${s.available !== undefined ? ` (${s.available} left)` : ''}`;
        });
        mount(message, h('div', { class: 'error', role: 'alert', test: 'out-of-stock' }, 'Some items are out of stock: ',
          h('ul', {}, names.map((n) => h('li', {}, n))), h('a', { href: '#/cart' }, 'Change your cart')));
      } else {
        mount(message, problemBox(error));
      }
    }
    busy = false; button.disabled = false;
  } }, h('h2', {}, 'Your items'), h('ul', { test: 'checkout-lines' }, cart.lines.map((l) => h('li', {}, `${l.name} × ${l.quantity}: ${money(l.lineTotal, cart.currency)}`))),
  h('h2', {}, 'Shipping address'), line1, city, postal, country, h('h2', {}, 'Payment'), card, help, totalLine, button, message);
  mount(box, form);
}

function statusTimeline(order) {
  return h('ol', { class: 'timeline', test: 'order-history' },
    (order.history || []).map((step) => h('li', {}, h('span', { class: 'status' }, step.status), ' ', h('time', { datetime: step.at }, when(step.at)))));
}

async function orderPage(id) {
  const box = h('section');
  mount(main, box);
  const path = `/orders/${encodeURIComponent(id)}`;
  let order = await loading(box, get(path));
  const status = h('span', { class: 'status', test: 'order-status' });
  const payment = h('span', { test: 'payment-status' });
  const history = h('div');
  const message = h('div', { 'aria-live': 'polite' });
  const cancel = confirmButton('Cancel order', 'Yes, cancel this order', async () => {
    try { order = await post(`${path}/cancel`); render(); } catch (error) { mount(message, problemBox(error)); }
  }, 'cancel-order');
  const render = () => {
    status.textContent = order.status;
    payment.textContent = order.paymentStatus;
    mount(history, statusTimeline(order));
    cancel.hidden = !['CREATED', 'PAYMENT_PENDING', 'CONFIRMED'].includes(order.status);
    if (order.status === 'PAYMENT_PENDING') mount(message, h('p', { class: 'loading', role: 'status' }, 'Waiting for the payment to be answered…'));
    else message.replaceChildren();
  };
  mount(box, h('h1', {}, 'Order ', h('code', {}, order.id)),
    h('p', { 'aria-live': 'polite' }, 'Status: ', status, ' · Payment: ', payment),
    h('div', { class: 'table-wrap' }, h('table', {}, h('tbody', {}, (order.lines || []).map((line) => h('tr', { test: 'order-line' },
      h('td', {}, line.name || line.itemId), h('td', {}, `× ${line.quantity}`), h('td', { class: 'num' }, money(line.lineTotal ?? line.unitPrice * line.quantity, order.currency))))),
    h('tfoot', {}, h('tr', {}, h('th', { colspan: 2 }, 'Total'), h('td', { class: 'num', test: 'order-amount' }, money(order.amount, order.currency)))))),
    h('h2', {}, 'History'), history, cancel, message, h('p', {}, h('a', { href: '#/orders' }, 'All orders')));
  render();
  const reload = async () => {
    try { order = await get(path); render(); } catch { /* keep the last view */ }
  };
  onLive((m) => {
    if (m.type === 'order.updated' && m.orderId === order.id) {
      order = { ...order, status: m.status, paymentStatus: m.paymentStatus || order.paymentStatus };
      render();
      reload();
    }
  });
  every(3000, () => { if (!isLive()) reload(); });
}

async function ordersPage(params) {
  if (!session.token) { location.hash = '#/signin'; return; }
  const status = params.get('status') || '';
  const filter = field('Status', { tag: 'select', test: 'order-filter', onchange: (e) => { location.hash = `#/orders${query({ status: e.target.value })}`; } });
  for (const s of ['', 'CREATED', 'PAYMENT_PENDING', 'CONFIRMED', 'SHIPPED', 'DELIVERED', 'PAYMENT_FAILED', 'EXPIRED', 'CANCELLED']) {
    filter.input.append(h('option', { value: s, selected: s === status }, s || 'All'));
  }
  const list = h('ul', { class: 'grid' });
  const box = h('section', { 'aria-live': 'polite' });
  mount(main, h('h1', {}, 'Your orders'), filter, box);
  const load = (cursor) => get(`/orders${query({ status, cursor, size: 20 })}`);
  const page = await loading(box, load());
  const show = (orders) => list.append(...orders.map((o) => h('li', { class: 'card', test: 'order-row' },
    h('a', { href: `#/order/${encodeURIComponent(o.id)}` }, when(o.createdAt)),
    h('span', { class: 'status' }, o.status), h('span', {}, money(o.amount, o.currency)))));
  mount(box, list);
  show(page.items);
  if (!page.items.length) box.append(h('p', {}, 'No orders yet.'));
  let cursor = page.nextCursor;
  if (cursor) {
    const more = h('button', { class: 'secondary', onclick: async () => {
      try { const next = await load(cursor); show(next.items); cursor = next.nextCursor; if (!cursor) more.remove(); } catch (error) { box.append(problemBox(error)); }
    } }, 'More orders');
    box.append(more);
  }
}

async function notificationsPage() {
  if (!session.token) { location.hash = '#/signin'; return; }
  const box = h('section', { 'aria-live': 'polite' });
  mount(main, h('h1', {}, 'Notifications'), box);
  const page = await loading(box, get('/notifications?size=50'));
  if (!page.items.length) { mount(box, h('p', {}, 'No notifications.')); return; }
  mount(box, h('ul', {}, page.items.map((n) => {
    const li = h('li', { class: n.read ? '' : 'unread', test: 'notification' },
      h('span', {}, n.message), ' ', n.orderId ? h('a', { href: `#/order/${encodeURIComponent(n.orderId)}` }, 'order') : null,
      ' ', h('time', { class: 'muted' }, when(n.createdAt)));
    if (!n.read) {
      li.append(' ', h('button', { class: 'link', onclick: async (e) => {
        try { await post(`/notifications/${encodeURIComponent(n.id)}/read`); li.classList.remove('unread'); e.target.remove(); refreshUnread(); } catch (error) { li.append(problemBox(error)); }
      } }, 'Mark read'));
    }
    return li;
  })));
  onLive((m) => { if (m.type === 'notification') notificationsPage(); });
}

async function wishlistPage() {
  if (!session.token) { location.hash = '#/signin'; return; }
  const box = h('section');
  mount(main, h('h1', {}, 'Wishlist'), box);
  const answer = await loading(box, get('/wishlist'));
  if (!answer.items.length) { mount(box, h('p', {}, 'Your wishlist is empty.')); return; }
  mount(box, h('ul', { class: 'grid' }, answer.items.map((item) => {
    const card = itemCard(item, 'wishlist-item');
    card.append(h('button', { class: 'secondary', onclick: async () => {
      try { await del(`/wishlist/${encodeURIComponent(item.id)}`); card.remove(); } catch (error) { card.append(problemBox(error)); }
    } }, 'Remove'));
    return card;
  })));
}

function signInPage(params, signUp = false) {
  const name = signUp ? field('Name', { test: 'name', required: true, autocomplete: 'name' }) : null;
  const email = field('Email', { type: 'email', test: 'email', required: true, autocomplete: 'email' });
  const password = field('Password', { type: 'password', test: 'password', required: true, minlength: signUp ? 8 : undefined, autocomplete: signUp ? 'new-password' : 'current-password' });
  const message = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', test: signUp ? 'sign-up-submit' : 'sign-in-submit' }, signUp ? 'Create account' : 'Sign in');
  const form = h('form', { onsubmit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    mount(message, h('p', { class: 'loading', role: 'status' }, 'Signing in…'));
    try {
      if (signUp) await post('/users', { email: email.input.value, password: password.input.value, name: name.input.value, role: 'buyer' });
      await signIn(email.input.value, password.input.value);
      connect();
      renderNav();
      location.hash = params.get('next') === 'checkout' ? '#/checkout' : '#/';
    } catch (error) {
      mount(message, problemBox(error));
    }
    submit.disabled = false;
  } }, name, email, password, submit, message);
  mount(main, h('h1', {}, signUp ? 'Create an account' : 'Sign in'), form,
    signUp ? h('p', {}, 'Have an account? ', h('a', { href: '#/signin' }, 'Sign in'))
      : h('p', {}, 'New here? ', h('a', { href: '#/signup' }, 'Create an account')));
  email.input.focus();
}

// ---- router ----------------------------------------------------------------

async function route() {
  for (const fn of cleanup) fn();
  cleanup = [];
  const hash = location.hash.slice(1) || '/';
  const [path, search = ''] = hash.split('?');
  const params = new URLSearchParams(search);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  try {
    switch (parts[0]) {
      case undefined: await homePage(); break;
      case 'search': await searchPage(params); break;
      case 'item': await itemPage(parts[1]); break;
      case 'cart': await cartPage(); break;
      case 'checkout': await checkoutPage(); break;
      case 'orders': await ordersPage(params); break;
      case 'order': await orderPage(parts[1]); break;
      case 'notifications': await notificationsPage(); break;
      case 'wishlist': await wishlistPage(); break;
      case 'signin': signInPage(params); break;
      case 'signup': signInPage(params, true); break;
      default: mount(main, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Go home')));
    }
  } catch (error) {
    // `loading` has shown the problem already; anything else shows here.
    if (!main.querySelector('[role="alert"]')) main.append(problemBox(error));
  }
}

window.addEventListener('hashchange', route);
window.addEventListener('agora:signed-out', () => { disconnect(); renderNav(); });
listen((m) => {
  if (m.type === 'notification') refreshUnread();
  if (m.type === 'order.updated') refreshCartCount();
});
renderNav();
route();
