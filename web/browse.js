// Finding things: the home page (recommendations), search results with
// facets, price range, sort and "more" by cursor, and the item page with
// live stock.

import { get, patch, put, query, session } from './api.js';
import { field, h, loading, money, mount, number, problemBox } from './dom.js';
import { isLive, subscribe, unsubscribe } from './live.js';
import { every, itemCard, main, onLeave, onLive, refreshCartCount, searchInput, variantName } from './shell.js';

export async function homePage() {
  const box = h('section', { 'aria-live': 'polite' });
  mount(main, h('h1', {}, 'Welcome to Agora'), h('h2', {}, 'Recommended for you'), box);
  const answer = await loading(box, get('/recommendations?size=12'));
  if (!answer.items.length) { mount(box, h('p', {}, 'Nothing to recommend yet: try a search.')); return; }
  mount(box, h('p', { class: 'muted' }, answer.strategy === 'personalized' ? 'Picked from your history' : 'Popular now'),
    h('ul', { class: 'grid' }, answer.items.map((item) => itemCard(item, 'recommendation'))));
}

export async function searchPage(params) {
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
  // Past the server's count limit (10,000 by default) `total` is that
  // limit, a lower bound, and `totalExact` is false: "10,000+".
  const exact = page.totalExact !== false;
  const total = exact ? number(page.total) : `${number(page.total)}+`;
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

export async function itemPage(id) {
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
      picker.input.append(h('option', { value: v.variantId }, variantName(v)));
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
  onLeave(() => unsubscribe(topic));
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
