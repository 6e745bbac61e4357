// The storefront's frame: the header (account links, cart count, unread
// notifications, the search box with autocomplete), the item card every
// list uses, and what a page registers to undo when the route changes
// (timers, live listeners, topic subscriptions).

import { get, query, session, signOut } from './api.js';
import { h, money, mount, number } from './dom.js';
import { disconnect, listen } from './live.js';

export const main = document.getElementById('main');
const nav = document.getElementById('nav');
let cleanup = [];

// "Skip to content" moves the focus; as a plain `#main` link it would be
// taken for a route.
document.querySelector('.skip')?.addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

/** Runs what the last page registered (its timers, listeners). */
export function leavePage() {
  for (const fn of cleanup) fn();
  cleanup = [];
}

/** Registers `fn` to run when the page is left. */
export function onLeave(fn) {
  cleanup.push(fn);
}

let unread = 0;

export async function refreshCartCount() {
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

export async function refreshUnread() {
  if (!session.token) return;
  try {
    const page = await get('/notifications?size=100');
    unread = page.items.filter((n) => !n.read).length;
  } catch { unread = 0; }
  const badge = document.getElementById('unread');
  if (badge) badge.textContent = String(unread);
}

export function renderNav() {
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
export const searchInput = document.getElementById('search-input');
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

export function itemCard(item, test) {
  return h('li', { class: 'card', test },
    h('a', { href: `#/item/${encodeURIComponent(item.id)}`, test: 'result-link' },
      item.image ? h('img', { src: item.image, alt: '' }) : h('div', { class: 'thumb' }),
      h('span', { test: 'result-name' }, item.name)),
    h('span', { class: 'muted' }, [item.brand, item.category].filter(Boolean).join(' · ')),
    h('span', {}, money(item.price, item.currency)),
    h('span', { class: 'muted' }, item.available > 0 ? `${number(item.available)} available` : 'Out of stock'));
}

/**
 * Names of the variants among `lines` (`{itemId, variantId}`), as
 * "size: M", keyed by variant id: cart and order lines carry the item's
 * name only, so each item with variants is read once.
 */
export async function variantLabels(lines) {
  const ids = [...new Set(lines.filter((l) => l.variantId && l.variantId !== l.itemId).map((l) => l.itemId))];
  const labels = new Map();
  const items = await Promise.all(ids.map((id) => get(`/items/${encodeURIComponent(id)}`).catch(() => null)));
  for (const item of items.filter(Boolean)) {
    for (const v of item.variants) labels.set(v.variantId, variantName(v));
  }
  return labels;
}

/** A variant as a shopper reads it: its attributes, else its SKU. */
export function variantName(v) {
  const attributes = Object.entries(v.attributes || {}).map(([k, val]) => `${k}: ${typeof val === 'object' ? JSON.stringify(val) : val}`);
  return attributes.join(', ') || v.sku || v.variantId;
}

/** Calls `fn` every `ms` while the page is shown. */
export function every(ms, fn) {
  const timer = setInterval(fn, ms);
  cleanup.push(() => clearInterval(timer));
}

/** Calls `fn` for each live message while the page is shown. */
export function onLive(fn) {
  cleanup.push(listen(fn));
}
