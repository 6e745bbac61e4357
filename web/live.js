// Live updates. A signed-in page holds one websocket (`/ws?token=`), which
// brings the user's order updates and notifications, and item topics on
// request. Guests cannot open one (the socket needs a token), so their
// pages poll instead.

import { session } from './api.js';

const listeners = new Set();
const topics = new Set();
let socket = null;
let retry = 0;

/** Calls `fn(message)` for every message; returns the unsubscribe function. */
export function listen(fn) {
  listeners.add(fn);
  connect();
  return () => listeners.delete(fn);
}

/** Whether messages can arrive (a signed-in, open socket). */
export const isLive = () => socket?.readyState === WebSocket.OPEN;

export function subscribe(topic) {
  topics.add(topic);
  if (isLive()) socket.send(JSON.stringify({ type: 'subscribe', topic }));
}

export function unsubscribe(topic) {
  topics.delete(topic);
  if (isLive()) socket.send(JSON.stringify({ type: 'unsubscribe', topic }));
}

export function connect() {
  const token = session.token;
  if (!token || (socket && socket.readyState <= WebSocket.OPEN)) return;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  socket = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`);
  socket.addEventListener('open', () => {
    retry = 0;
    for (const topic of topics) socket.send(JSON.stringify({ type: 'subscribe', topic }));
  });
  socket.addEventListener('message', (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    for (const fn of listeners) fn(message);
  });
  socket.addEventListener('close', () => {
    socket = null;
    if (!session.token) return;
    retry = Math.min(retry + 1, 5);
    setTimeout(connect, 500 * 2 ** retry);
  });
}

export function disconnect() {
  const s = socket;
  socket = null;
  s?.close();
}
