// Herald's channel-history client helper: an AppSync Events WebSocket client
// that remembers each subscription's position (the `offset` and `epoch` of
// the last event it delivered) and, when the connection drops, reconnects and
// resubscribes with `since`, so the application gets every event once, in
// order, across reconnects. When the server cannot recover (the position is
// older than the channel's history, or the history was lost), `onReset` is
// called: the application must refetch its state.
//
// Plain ES module, no dependencies: pass a WebSocket class (the browser's,
// or the `ws` package's in Node). Works next to Amplify (which has no
// `since`): use Amplify to publish and this helper for the subscriptions
// that must not miss anything.
//
//   import { HeraldEvents } from './herald-recovery.mjs';
//   const client = new HeraldEvents({
//     url: 'wss://example.com/event/realtime',
//     auth: { host: 'example.com', 'x-api-key': 'da2-...' },
//   });
//   const sub = client.subscribe('/chat/room-1', {
//     next: (event, meta) => render(event),        // meta: { channel, offset, epoch }
//     reset: () => reloadRoom(),                   // history could not fill a gap
//   });
//   // later: sub.positions() can be saved (localStorage) and passed back as
//   // `since` to subscribe() after a page reload; sub.close(); client.close().
//
// Licensed under the Apache License, Version 2.0 (see LICENSE).

const PROTOCOL = 'aws-appsync-event-ws';

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export class HeraldEvents {
  /**
   * @param {object} options
   * @param {string} options.url  the realtime endpoint (wss://host/event/realtime)
   * @param {object} options.auth the authorization headers (host and x-api-key, or authorization, ...)
   * @param {Function} [options.WebSocket] a WebSocket class (default: globalThis.WebSocket)
   * @param {number} [options.minBackoffMs=250] first reconnect delay (doubles up to maxBackoffMs)
   * @param {number} [options.maxBackoffMs=10000]
   */
  constructor({ url, auth, WebSocket = globalThis.WebSocket, minBackoffMs = 250, maxBackoffMs = 10000 }) {
    if (!WebSocket) throw new Error('no WebSocket class: pass options.WebSocket');
    Object.assign(this, { url, auth, WebSocketClass: WebSocket, minBackoffMs, maxBackoffMs });
    this.subs = new Map();
    this.nextId = 1;
    this.backoff = minBackoffMs;
    this.closed = false;
    this.ready = false;
    this.reconnects = 0;
    this.#open();
  }

  /**
   * Subscribe to a channel or a wildcard (`/ns/*`).
   * @param {string} channel
   * @param {{next: Function, reset?: Function, error?: Function, positioned?: Function}} handlers
   *   `positioned` gets each subscribe_success (after every reconnect too)
   * @param {object} [since] a saved position (from `positions()`)
   */
  subscribe(channel, handlers, since = undefined) {
    const sub = new Subscription(this, `h${this.nextId++}`, channel, handlers, since);
    this.subs.set(sub.id, sub);
    if (this.ready) sub.send();
    return sub;
  }

  /** Close the connection for good. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.socket?.close(1000);
  }

  /** Drop the connection as a network failure would (it reconnects). */
  drop() {
    this.socket?.terminate ? this.socket.terminate() : this.socket?.close(4000);
  }

  #open() {
    const header = `header-${base64url(JSON.stringify(this.auth))}`;
    const socket = new this.WebSocketClass(this.url, [PROTOCOL, header]);
    this.socket = socket;
    this.ready = false;
    socket.onmessage = (m) => this.#receive(JSON.parse(typeof m.data === 'string' ? m.data : m.data.toString()));
    socket.onopen = () => socket.send(JSON.stringify({ type: 'connection_init' }));
    socket.onclose = () => this.#lost();
    socket.onerror = () => {};
  }

  #lost() {
    this.ready = false;
    clearTimeout(this.timer);
    if (this.closed) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.maxBackoffMs);
    this.timer = setTimeout(() => { this.reconnects += 1; this.#open(); }, delay);
  }

  #alive() {
    // No `ka` or data within the announced timeout: the link is dead.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.drop(), this.timeoutMs ?? 300000);
  }

  #receive(msg) {
    switch (msg.type) {
      case 'connection_ack':
        this.ready = true;
        this.backoff = this.minBackoffMs;
        this.timeoutMs = msg.connectionTimeoutMs;
        this.#alive();
        for (const sub of this.subs.values()) sub.send();
        return;
      case 'ka':
        this.#alive();
        return;
      case 'data':
        this.#alive();
        this.subs.get(msg.id)?.data(msg);
        return;
      case 'subscribe_success':
        this.subs.get(msg.id)?.positioned(msg);
        return;
      case 'subscribe_error':
        this.subs.get(msg.id)?.handlers.error?.(msg.errors);
        return;
      default:
    }
  }
}

class Subscription {
  constructor(client, id, channel, handlers, since) {
    Object.assign(this, { client, id, channel, handlers });
    this.wildcard = channel.endsWith('/*');
    // Exact: {offset, epoch}; wildcard: {channel: {offset, epoch}}.
    this.pos = since ?? (this.wildcard ? {} : null);
    this.started = since !== undefined;
  }

  /** What to save to resume after a reload (pass back as `since`). */
  positions() {
    return JSON.parse(JSON.stringify(this.pos));
  }

  close() {
    this.client.subs.delete(this.id);
    if (this.client.ready) this.client.socket.send(JSON.stringify({ type: 'unsubscribe', id: this.id }));
  }

  send() {
    this.resyncing = true; // until subscribe_success: a new connection's frames start after it
    const msg = { type: 'subscribe', id: this.id, channel: this.channel, authorization: this.client.auth };
    if (this.started) msg.since = this.wildcard ? { channels: this.pos } : this.pos;
    this.client.socket.send(JSON.stringify(msg));
  }

  /** Resubscribe from the last position (a gap was seen on a live stream). */
  resubscribe() {
    this.resyncing = true; // frames of the old subscription still in flight are dropped
    this.client.socket.send(JSON.stringify({ type: 'unsubscribe', id: this.id }));
    this.send();
  }

  positioned(msg) {
    this.resyncing = false;
    if (this.started && msg.recovered === false) this.handlers.reset?.();
    if (this.wildcard) {
      for (const [ch, p] of Object.entries(msg.channels ?? {})) {
        // Keep our own position where the server recovered from it.
        if (p.epoch !== undefined && (!this.pos[ch] || p.recovered === false || this.pos[ch].epoch !== p.epoch)) {
          this.pos[ch] = { offset: p.offset, epoch: p.epoch };
        }
      }
    } else if (msg.epoch !== undefined && (!this.started || msg.recovered === false)) {
      this.pos = { offset: msg.offset, epoch: msg.epoch };
    }
    this.started = true;
    this.handlers.positioned?.(msg);
  }

  data(msg) {
    if (this.resyncing) return;
    const meta = { channel: msg.channel, offset: msg.offset, epoch: msg.epoch };
    if (msg.offset !== undefined) {
      const last = this.wildcard ? this.pos[msg.channel] : this.pos;
      if (last && last.epoch === msg.epoch) {
        if (msg.offset <= last.offset) return; // seen already
        if (msg.offset > last.offset + 1) return this.resubscribe(); // a gap: fill it from history
      } else if (last && last.epoch !== msg.epoch) {
        this.handlers.reset?.(); // the stream was lost and began again
      }
      const pos = { offset: msg.offset, epoch: msg.epoch };
      if (this.wildcard) this.pos[msg.channel] = pos;
      else this.pos = pos;
    }
    this.handlers.next(JSON.parse(msg.event), meta);
  }
}
