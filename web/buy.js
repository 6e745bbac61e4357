// Buying: the cart (guest or signed in, with price changes since each
// line was added) and the checkout (one Idempotency-Key per attempt, and
// the PRICE_CHANGED, OUT_OF_STOCK and decline answers).

import { ApiError, call, get, patch, session } from './api.js';
import { field, h, loading, money, mount, problemBox } from './dom.js';
import { main, refreshCartCount, variantLabels } from './shell.js';

export async function cartPage() {
  const box = h('section', { 'aria-live': 'polite' });
  mount(main, h('h1', {}, 'Your cart'), box);
  if (!session.token && !session.cartToken) { mount(box, h('p', { test: 'empty-cart' }, 'Your cart is empty.')); return; }
  const cart = await loading(box, get('/cart'));
  if (!cart.lines.length) { mount(box, h('p', { test: 'empty-cart' }, 'Your cart is empty.')); return; }
  const variants = await variantLabels(cart.lines);
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
      h('td', {}, h('a', { href: `#/item/${encodeURIComponent(line.itemId)}` }, line.name),
        variants.has(line.variantId) ? h('div', { class: 'muted', test: 'line-variant' }, variants.get(line.variantId)) : null, changed),
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

export async function checkoutPage() {
  if (!session.token) { location.hash = '#/signin?next=checkout'; return; }
  const box = h('section');
  mount(main, h('h1', {}, 'Checkout'), box);
  const [cart, me] = await loading(box, Promise.all([get('/cart'), get('/users/me').catch(() => ({}))]));
  if (!cart.lines.length) { mount(box, h('p', {}, 'Your cart is empty.')); return; }
  const variants = await variantLabels(cart.lines);
  const saved = me.addresses?.[0] || {};
  const line1 = field('Address', { test: 'address-line1', required: true, autocomplete: 'address-line1', value: saved.line1 || '' });
  const city = field('City', { test: 'address-city', required: true, autocomplete: 'address-level2', value: saved.city || '' });
  const postal = field('Postal code', { test: 'address-postal-code', required: true, autocomplete: 'postal-code', value: saved.postalCode || '' });
  const country = field('Country', { test: 'address-country', required: true, autocomplete: 'country', value: saved.country || 'IN' });
  const card = field('Card number', { test: 'card-number', required: true, inputmode: 'numeric', autocomplete: 'cc-number', 'aria-describedby': 'test-cards' });
  const help = h('details', { id: 'test-cards', open: true }, h('summary', {}, 'Test cards (simulated gateway)'),
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
  } }, h('h2', {}, 'Your items'), h('ul', { test: 'checkout-lines' }, cart.lines.map((l) => h('li', {}, `${l.name}${variants.has(l.variantId) ? ` (${variants.get(l.variantId)})` : ''} × ${l.quantity}: ${money(l.lineTotal, cart.currency)}`))),
  h('h2', {}, 'Shipping address'), line1, city, postal, country, h('h2', {}, 'Payment'), card, help, totalLine, button, message);
  mount(box, form);
}
