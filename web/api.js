// The public API, as the pages use it: JSON in and out, the bearer token
// and the guest cart token kept in localStorage, problems thrown as errors.

const TOKEN = 'agora.token';
const USER = 'agora.user';
const CART = 'agora.cartToken';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || { title: `HTTP ${status}` };
  }
}

export const session = {
  get token() { return localStorage.getItem(TOKEN); },
  get user() {
    try { return JSON.parse(localStorage.getItem(USER) || 'null'); } catch { return null; }
  },
  get cartToken() { return localStorage.getItem(CART); },
  set cartToken(token) {
    if (token) localStorage.setItem(CART, token); else localStorage.removeItem(CART);
  },
  save(token, user) {
    localStorage.setItem(TOKEN, token);
    localStorage.setItem(USER, JSON.stringify(user));
  },
  clear() {
    localStorage.removeItem(TOKEN);
    localStorage.removeItem(USER);
  },
};

/** One request. `headers` adds to the defaults; returns {status, body}. */
export async function call(method, path, body, headers = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (session.token) init.headers.Authorization = `Bearer ${session.token}`;
  else if (session.cartToken) init.headers['X-Cart-Token'] = session.cartToken;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, { title: 'Network error', detail: String(error.message || error) });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { title: text.slice(0, 200) }; }
  }
  if (response.status === 401 && session.token && !path.startsWith('/sessions')) {
    session.clear();
    window.dispatchEvent(new Event('agora:signed-out'));
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, body: data };
}

export const get = async (path) => (await call('GET', path)).body;
export const post = async (path, body, headers) => (await call('POST', path, body, headers)).body;
export const patch = async (path, body) => (await call('PATCH', path, body)).body;
export const put = async (path) => (await call('PUT', path)).body;
export const del = async (path) => (await call('DELETE', path)).body;

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Signs in (merging the guest cart) and remembers the session. */
export async function signIn(email, password) {
  const body = { email, password };
  if (session.cartToken) body.cartToken = session.cartToken;
  const answer = await post('/sessions', body);
  session.save(answer.token, answer.user);
  session.cartToken = null;
  return answer.user;
}

export async function signOut() {
  try { await del('/sessions'); } catch { /* the token is dropped either way */ }
  session.clear();
}
