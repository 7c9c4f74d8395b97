// Herald console: speaks the AppSync Events protocol from the browser.
// The API key lives only in this page's memory; nothing is stored.
'use strict';

const $ = (id) => document.getElementById(id);
const MAX_EVENTS = 500;

const state = {
  ws: null,
  key: '',
  subs: new Map(), // id -> { channel, li }
  pending: new Map(), // publish id -> callback
  eventCount: 0,
  statsTimer: null,
  lastStats: null,
};

function uid() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  bytes.forEach((b) => { bin += String.fromCharCode(b); });
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function auth() {
  return { host: location.host, 'x-api-key': state.key };
}

function setStatus(text, kind) {
  const s = $('status');
  s.textContent = text;
  s.dataset.state = kind;
}

function hint(el, text, kind) {
  el.textContent = text;
  el.className = 'hint' + (kind ? ' ' + kind : '');
}

function setConnected(on) {
  $('connect').disabled = on;
  $('api-key').disabled = on;
  $('disconnect').disabled = !on;
  $('subscribe').disabled = !on;
  $('publish-ws').disabled = !on;
  $('publish-http').disabled = !on;
}

function send(frame) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(frame));
}

function firstError(frame) {
  const e = (frame.errors && frame.errors[0]) || {};
  return `${e.errorType || 'Error'}: ${e.message || 'unknown error'}`;
}

function connect() {
  const key = $('api-key').value.trim();
  if (!key) return;
  state.key = key;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${scheme}://${location.host}/event/realtime`;
  setStatus('Connecting…', 'connecting');
  hint($('connect-msg'), '');
  let ws;
  try {
    ws = new WebSocket(url, ['aws-appsync-event-ws', 'header-' + base64url(JSON.stringify(auth()))]);
  } catch (e) {
    setStatus('Error', 'error');
    hint($('connect-msg'), String(e), 'err');
    return;
  }
  state.ws = ws;
  ws.onopen = () => send({ type: 'connection_init' });
  ws.onmessage = (msg) => {
    if (typeof msg.data !== 'string') return;
    let frame;
    try { frame = JSON.parse(msg.data); } catch { return; }
    onFrame(frame);
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    setConnected(false);
    stopStats();
    for (const [, sub] of state.subs) sub.li.remove();
    state.subs.clear();
    if ($('status').dataset.state !== 'error') {
      setStatus('Disconnected', 'disconnected');
      if (ev.code !== 1000 && ev.code !== 1005) {
        hint($('connect-msg'), `Closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`, 'err');
      }
    }
  };
}

function disconnect() {
  if (state.ws) state.ws.close(1000);
}

function onFrame(f) {
  switch (f.type) {
    case 'connection_ack':
      setStatus('Connected', 'connected');
      setConnected(true);
      hint($('connect-msg'), 'Connected. The key stays in this page only.', 'ok');
      startStats();
      break;
    case 'connection_error':
      setStatus('Unauthorized', 'error');
      hint($('connect-msg'), firstError(f), 'err');
      break;
    case 'subscribe_success': {
      const sub = state.subs.get(f.id);
      if (sub) { sub.li.dataset.state = 'active'; sub.li.querySelector('.state').textContent = 'live'; }
      break;
    }
    case 'subscribe_error': {
      const sub = state.subs.get(f.id);
      if (sub) {
        sub.li.dataset.state = 'error';
        sub.li.querySelector('.state').textContent = firstError(f);
        state.subs.delete(f.id);
        setTimeout(() => sub.li.remove(), 6000);
      }
      break;
    }
    case 'unsubscribe_success': {
      const sub = state.subs.get(f.id);
      if (sub) { sub.li.remove(); state.subs.delete(f.id); }
      break;
    }
    case 'data':
      addEvent(f);
      break;
    case 'publish_success':
    case 'publish_error': {
      const done = state.pending.get(f.id);
      if (done) { state.pending.delete(f.id); done(f); }
      break;
    }
    case 'error':
      hint($('pub-result'), firstError(f), 'err');
      break;
    default:
      break; // ka and others
  }
}

function subscribe(channel) {
  const id = uid();
  const li = document.createElement('li');
  li.dataset.state = 'pending';
  const ch = document.createElement('span');
  ch.className = 'ch';
  ch.textContent = channel;
  const st = document.createElement('span');
  st.className = 'state';
  st.textContent = 'subscribing…';
  const x = document.createElement('button');
  x.type = 'button';
  x.className = 'secondary';
  x.textContent = '×';
  x.title = 'Unsubscribe';
  x.onclick = () => send({ type: 'unsubscribe', id });
  li.append(ch, st, x);
  $('subs').append(li);
  state.subs.set(id, { channel, li });
  send({ type: 'subscribe', id, channel, authorization: auth() });
}

function addEvent(f) {
  const sub = state.subs.get(f.id);
  let text = f.event;
  try { text = JSON.stringify(JSON.parse(f.event), null, 2); } catch { /* show as sent */ }
  const li = document.createElement('li');
  li.className = 'event';
  const meta = document.createElement('div');
  meta.className = 'meta';
  const time = document.createElement('span');
  time.textContent = new Date().toLocaleTimeString();
  const subCh = document.createElement('span');
  subCh.className = 'sub-ch';
  subCh.textContent = sub ? sub.channel : f.id;
  meta.append(time, subCh);
  const pre = document.createElement('pre');
  pre.textContent = text;
  li.append(meta, pre);
  const list = $('events');
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  state.eventCount += 1;
  $('event-count').textContent = String(state.eventCount);
  $('empty').hidden = true;
}

function readEvent() {
  const raw = $('pub-event').value;
  try {
    JSON.parse(raw);
  } catch (e) {
    hint($('pub-result'), 'The event is not valid JSON: ' + e.message, 'err');
    return null;
  }
  return raw;
}

function publishWs() {
  const channel = $('pub-channel').value.trim();
  const event = readEvent();
  if (event === null) return;
  const id = uid();
  state.pending.set(id, (f) => {
    if (f.type === 'publish_success') {
      hint($('pub-result'), `Published ${f.successful.length} event(s) over WebSocket.`, 'ok');
    } else {
      hint($('pub-result'), firstError(f), 'err');
    }
  });
  send({ type: 'publish', id, channel, events: [event], authorization: auth() });
}

async function publishHttp() {
  const channel = $('pub-channel').value.trim();
  const event = readEvent();
  if (event === null) return;
  try {
    const res = await fetch('/event', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': state.key },
      body: JSON.stringify({ channel, events: [event] }),
    });
    const body = await res.json();
    if (res.ok) hint($('pub-result'), `Published ${body.successful.length} event(s) over HTTP.`, 'ok');
    else hint($('pub-result'), firstError(body), 'err');
  } catch (e) {
    hint($('pub-result'), String(e), 'err');
  }
}

function fmtRate(n) {
  return n >= 1000 ? (n / 1000).toFixed(1) + 'k' : n.toFixed(n < 10 ? 1 : 0);
}

function fmtUptime(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

async function pollStats() {
  try {
    const res = await fetch('/console/api/stats', { headers: { 'x-api-key': state.key }, cache: 'no-store' });
    if (!res.ok) return;
    const s = await res.json();
    const now = performance.now();
    $('stat-connections').textContent = String(s.connections);
    $('stat-subscriptions').textContent = String(s.subscriptions);
    $('stat-in-total').textContent = String(s.eventsIn);
    $('stat-uptime').textContent = fmtUptime(s.uptimeSeconds);
    $('endpoint').textContent = `${location.origin}/event · engine ${s.engine} · namespaces ${s.namespaces.join(', ')}`;
    if (state.lastStats) {
      const dt = (now - state.lastStats.at) / 1000;
      if (dt > 0) {
        $('stat-in-rate').textContent = fmtRate(Math.max(0, s.eventsIn - state.lastStats.eventsIn) / dt);
        $('stat-out-rate').textContent = fmtRate(Math.max(0, s.eventsDelivered - state.lastStats.eventsDelivered) / dt);
      }
    }
    state.lastStats = { at: now, eventsIn: s.eventsIn, eventsDelivered: s.eventsDelivered };
  } catch { /* the next poll tries again */ }
}

function startStats() {
  stopStats();
  pollStats();
  state.statsTimer = setInterval(pollStats, 2000);
}

function stopStats() {
  if (state.statsTimer) clearInterval(state.statsTimer);
  state.statsTimer = null;
  state.lastStats = null;
}

window.addEventListener('DOMContentLoaded', () => {
  $('endpoint').textContent = `${location.origin}/event`;
  $('connect-form').addEventListener('submit', (e) => { e.preventDefault(); connect(); });
  $('disconnect').addEventListener('click', disconnect);
  $('subscribe-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const ch = $('sub-channel').value.trim();
    if (ch) subscribe(ch);
  });
  $('publish-form').addEventListener('submit', (e) => { e.preventDefault(); publishWs(); });
  $('publish-http').addEventListener('click', publishHttp);
  $('clear').addEventListener('click', () => {
    $('events').replaceChildren();
    state.eventCount = 0;
    $('event-count').textContent = '0';
    $('empty').hidden = false;
  });
});
