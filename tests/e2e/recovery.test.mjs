// clients/js/herald-recovery.mjs against `herald serve` (over TLS, started by
// run.mjs): a subscriber whose connection drops misses nothing; every event
// arrives once, in order, across the reconnect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { HeraldEvents } from '../../clients/js/herald-recovery.mjs';

const endpoint = process.env.HERALD_ENDPOINT; // https://host/event
const apiKey = process.env.HERALD_API_KEY;
const host = new URL(endpoint).host;
const WAIT_MS = 10000;

async function post(channel, payloads) {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
    body: JSON.stringify({ channel, events: payloads.map((p) => JSON.stringify(p)) }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** A promise settled by `settle` (or rejected after WAIT_MS). */
function waiter(what) {
  let settle;
  const p = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
    settle = (v) => { clearTimeout(timer); resolve(v); };
  });
  return { p, settle };
}

test('a dropped connection reconnects with since and misses nothing', async () => {
  const client = new HeraldEvents({
    url: endpoint.replace(/^http/, 'ws') + '/realtime',
    auth: { host, 'x-api-key': apiKey },
    WebSocket,
    minBackoffMs: 100,
  });
  const received = [];
  let want = null;
  const resets = [];
  let positioned = waiter('subscribe_success');
  const sub = client.subscribe('/default/recovery', {
    next: (event, meta) => {
      received.push({ n: event.n, offset: meta.offset });
      if (want && received.length >= want.n) want.settle();
    },
    reset: () => resets.push(true),
    positioned: (msg) => positioned.settle(msg),
  });
  const first = await positioned.p;
  assert.equal(first.offset, 0);
  const until = (n) => { want = { n, ...waiter(`${n} events`) }; if (received.length >= n) want.settle(); return want.p; };

  await post('/default/recovery', [{ n: 1 }, { n: 2 }, { n: 3 }]);
  await until(3);
  positioned = waiter('the resubscription');
  client.drop();
  for (let n = 4; n <= 103; n += 5) {
    await post('/default/recovery', [0, 1, 2, 3, 4].map((i) => ({ n: n + i })));
  }
  const again = await positioned.p;
  assert.equal(again.recovered, true, JSON.stringify(again));
  await until(103);
  assert.deepEqual(received.map((r) => r.n), Array.from({ length: 103 }, (_, i) => i + 1));
  assert.deepEqual(received.map((r) => r.offset), Array.from({ length: 103 }, (_, i) => i + 1));
  assert.ok(client.reconnects >= 1);
  assert.deepEqual(resets, []);
  assert.equal(sub.positions().offset, 103);
  client.close();
});
