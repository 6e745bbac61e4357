// The buyer's own pages: an order (its timeline, live), the orders list,
// notifications, the wishlist, and signing in or up.

import { del, get, post, query, session, signIn } from './api.js';
import { confirmButton, day, field, h, loading, money, mount, problemBox, when } from './dom.js';
import { connect, isLive } from './live.js';
import { every, itemCard, main, onLive, refreshUnread, renderNav, variantLabels } from './shell.js';

function statusTimeline(order) {
  return h('ol', { class: 'timeline', test: 'order-history' },
    (order.history || []).map((step) => h('li', {}, h('span', { class: 'status' }, step.status), ' ', h('time', { datetime: step.at }, when(step.at)))));
}

export async function orderPage(id) {
  const box = h('section');
  mount(main, box);
  const path = `/orders/${encodeURIComponent(id)}`;
  let order = await loading(box, get(path));
  const variants = await variantLabels(order.lines || []);
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
  mount(box, h('h1', {}, `Order placed ${day(order.createdAt)}`), h('p', { class: 'muted' }, 'Order number ', h('code', {}, order.id)),
    h('p', { 'aria-live': 'polite' }, 'Status: ', status, ' · Payment: ', payment),
    h('div', { class: 'table-wrap' }, h('table', {}, h('tbody', {}, (order.lines || []).map((line) => h('tr', { test: 'order-line' },
      h('td', {}, line.name || line.itemId, variants.has(line.variantId) ? h('div', { class: 'muted' }, variants.get(line.variantId)) : null), h('td', {}, `× ${line.quantity}`), h('td', { class: 'num' }, money(line.lineTotal ?? line.unitPrice * line.quantity, order.currency))))),
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

export async function ordersPage(params) {
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

export async function notificationsPage() {
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

export async function wishlistPage() {
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

export function signInPage(params, signUp = false) {
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
      // Onward, unless the shopper has gone elsewhere meanwhile.
      if (/^#\/sign(in|up)/.test(location.hash)) location.hash = params.get('next') === 'checkout' ? '#/checkout' : '#/';
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
