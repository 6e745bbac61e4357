// The storefront: a single-page app with hash routes (#/search?term=,
// #/item/{id}, #/cart, #/checkout, #/orders, #/order/{id}, #/signin,
// #/signup, #/notifications, #/wishlist). Everything goes through the
// public API; data is always rendered as text. The pages live in
// browse.js, buy.js and account.js; the header in shell.js.

import { h, mount, problemBox } from './dom.js';
import { disconnect, listen } from './live.js';
import { notificationsPage, orderPage, ordersPage, signInPage, wishlistPage } from './account.js';
import { homePage, itemPage, searchPage } from './browse.js';
import { cartPage, checkoutPage } from './buy.js';
import { leavePage, main, refreshCartCount, refreshUnread, renderNav, searchInput } from './shell.js';

async function route() {
  leavePage();
  const hash = location.hash.slice(1) || '/';
  const [path, search = ''] = hash.split('?');
  const params = new URLSearchParams(search);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  // The search box shows the term only on the results it produced.
  if (parts[0] !== 'search') searchInput.value = '';
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
  announce();
}

/**
 * After a route change: the tab's title names the page, and keyboard and
 * screen-reader users land on its heading (unless the page focused a
 * field itself, as sign-in does), not on the link they left behind.
 */
function announce() {
  const heading = main.querySelector('h1');
  document.title = heading ? `${heading.textContent} · Agora` : 'Agora';
  if (!heading || main.contains(document.activeElement)) return;
  heading.tabIndex = -1;
  heading.focus();
}

window.addEventListener('hashchange', route);
window.addEventListener('agora:signed-out', () => { disconnect(); renderNav(); });
listen((m) => {
  if (m.type === 'notification') refreshUnread();
  if (m.type === 'order.updated') refreshCartCount();
});
renderNav();
route();
