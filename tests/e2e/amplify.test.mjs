// The real npm `aws-amplify` (v6) client against `herald serve` over TLS.
// Started by run.mjs, which provides HERALD_ENDPOINT, HERALD_API_KEY and a
// trusted self-signed certificate.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';

// Node 20 has no global WebSocket; Amplify needs one.
globalThis.WebSocket = WebSocket;

const { Amplify } = await import('aws-amplify');
const { events } = await import('aws-amplify/data');

const endpoint = process.env.HERALD_ENDPOINT;
const apiKey = process.env.HERALD_API_KEY;
assert.ok(endpoint && apiKey, 'run through run.mjs');

const { decodeJWT } = await import('aws-amplify/auth');

// An OIDC token signed with the local issuer's key (see run.mjs).
function oidcToken(extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'ES256', typ: 'JWT', kid: 'e2e-1' })}.${b64({
    iss: process.env.HERALD_OIDC_ISSUER, sub: 'amplify-user', aud: 'amplify-web', client_id: 'amplify-web',
    token_use: 'access', iat: now, exp: now + 600, ...extra,
  })}`;
  const key = createPrivateKey(readFileSync(process.env.HERALD_JWT_KEY));
  const sig = cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

let currentToken = oidcToken();

Amplify.configure(
  { API: { Events: { endpoint, region: 'us-east-1', defaultAuthMode: 'apiKey', apiKey } } },
  {
    Auth: {
      // Custom providers: OIDC tokens from the local issuer, static IAM credentials.
      tokenProvider: {
        getTokens: async () => ({ accessToken: decodeJWT(currentToken), idToken: decodeJWT(currentToken) }),
      },
      credentialsProvider: {
        getCredentialsAndIdentityId: async () => ({
          credentials: { accessKeyId: process.env.HERALD_IAM_KEY_ID, secretAccessKey: process.env.HERALD_IAM_SECRET },
        }),
        clearCredentialsAndIdentityId: () => {},
      },
    },
  },
);

const WAIT_MS = 10000;

/** A subscription that collects events and lets a test await the next ones. */
function collector() {
  const received = [];
  const waiters = [];
  const errors = [];
  const observer = {
    next: (msg) => {
      received.push(msg);
      while (waiters.length && waiters[0].n <= received.length) waiters.shift().resolve();
    },
    error: (e) => errors.push(e),
  };
  const until = (n) =>
    received.length >= n
      ? Promise.resolve()
      : new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`only ${received.length}/${n} events arrived; errors: ${JSON.stringify(errors)}`)), WAIT_MS);
          waiters.push({ n, resolve: () => { clearTimeout(timer); resolve(); } });
        });
  return { observer, received, errors, until };
}

const withTimeout = (p, what) =>
  Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), WAIT_MS))]);

after(async () => {
  events.closeAll?.();
});

// First, before any socket is open (Amplify shares one socket per client).
test('a wrong API key gets connection_error, which Amplify treats as final', async () => {
  await assert.rejects(
    withTimeout(events.connect('default/x', { apiKey: 'da2-wrongwrongwrongwrongwrong0' }), 'connect rejection'),
    (err) => {
      assert.match(String(err?.message ?? err) + JSON.stringify(err), /Unauthorized|not authorized/i);
      return true;
    },
  );
});

test('events.post over HTTP resolves (no failed events)', async () => {
  const res = await events.post('default/http', { hello: 'http' });
  assert.equal(res, undefined);
  const batch = await events.post('/default/http', [{ a: 1 }, { b: 2 }]);
  assert.equal(batch, undefined);
});

test('connect, subscribe (exact), receive from HTTP and WebSocket publishes', async () => {
  const channel = await withTimeout(events.connect('default/chat'), 'connect');
  const c = collector();
  const sub = channel.subscribe(c.observer);
  const { subscriptionId } = await withTimeout(sub.ready, 'subscription ready');
  assert.ok(subscriptionId);

  await events.post('default/chat', { via: 'http', n: 1 });
  await withTimeout(channel.publish({ via: 'ws', n: 2 }), 'WebSocket publish');
  await c.until(2);
  assert.deepEqual(c.received.map((m) => m.event), [{ via: 'http', n: 1 }, { via: 'ws', n: 2 }]);
  for (const m of c.received) assert.equal(m.type, 'data');

  // A batch over WebSocket arrives as separate events, in order.
  await channel.publish([{ n: 3 }, { n: 4 }, 'five']);
  await c.until(5);
  assert.deepEqual(c.received.slice(2).map((m) => m.event), [{ n: 3 }, { n: 4 }, 'five']);
  sub.unsubscribe();
  await channel.close();
});

test('wildcard subscription receives deeper channels only in its namespace', async () => {
  const channel = await events.connect('default/*');
  const c = collector();
  const sub = channel.subscribe(c.observer);
  await withTimeout(sub.ready, 'subscription ready');
  await events.post('default/room/42', { deep: true });
  await events.post('default/room', { shallow: true });
  await c.until(2);
  assert.deepEqual(c.received.map((m) => m.event), [{ deep: true }, { shallow: true }]);
  sub.unsubscribe();
  await channel.close();
});

test('an event from `herald publish` reaches an Amplify subscriber', async () => {
  const channel = await events.connect('default/cli');
  const c = collector();
  const sub = channel.subscribe(c.observer);
  await withTimeout(sub.ready, 'subscription ready');
  const { stdout } = await promisify(execFile)(process.env.HERALD_BIN, [
    'publish', 'default/cli', '{"from":"cli"}', '--endpoint', endpoint, '--api-key', apiKey,
    '--ca-cert', process.env.HERALD_CA_CERT,
  ]);
  assert.equal(JSON.parse(stdout).successful.length, 1);
  await c.until(1);
  assert.deepEqual(c.received[0].event, { from: 'cli' });
  sub.unsubscribe();
  await channel.close();
});

test('subscribing to an unknown namespace fails that subscription only', async () => {
  const bad = await events.connect('nope/x');
  const errs = collector();
  const badSub = bad.subscribe(errs.observer);
  await assert.rejects(withTimeout(badSub.ready, 'ready rejection'));

  const good = await events.connect('default/after-error');
  const c = collector();
  const sub = good.subscribe(c.observer);
  await withTimeout(sub.ready, 'subscription ready');
  await events.post('default/after-error', { still: 'working' });
  await c.until(1);
  assert.deepEqual(c.received[0].event, { still: 'working' });
  sub.unsubscribe();
  await good.close();
  await bad.close();
});

test('a wrong API key is refused over HTTP', async () => {
  await assert.rejects(
    events.post('default/x', { n: 1 }, { apiKey: 'da2-wrongwrongwrongwrongwrong0' }),
    (err) => {
      assert.equal(err.name, 'UnauthorizedException');
      return true;
    },
  );
});

test("authMode 'oidc' (token provider): post, connect, subscribe, publish", async () => {
  currentToken = oidcToken();
  assert.equal(await events.post('default/oidc', { via: 'oidc-http' }, { authMode: 'oidc' }), undefined);
  const channel = await withTimeout(events.connect('default/oidc', { authMode: 'oidc' }), 'connect');
  const c = collector();
  const sub = channel.subscribe(c.observer, { authMode: 'oidc' });
  await withTimeout(sub.ready, 'subscription ready');
  await channel.publish({ via: 'oidc-ws' }, { authMode: 'oidc' });
  await events.post('default/oidc', { via: 'oidc-http-2' }, { authMode: 'oidc' });
  await c.until(2);
  assert.deepEqual(c.received.map((m) => m.event), [{ via: 'oidc-ws' }, { via: 'oidc-http-2' }]);
  sub.unsubscribe();
  await channel.close();

  // An expired token is refused.
  currentToken = oidcToken({ exp: Math.floor(Date.now() / 1000) - 300 });
  await assert.rejects(events.post('default/oidc', { n: 1 }, { authMode: 'oidc' }), (e) => e.name === 'UnauthorizedException');
  currentToken = oidcToken();
});

test("authMode 'lambda' (authToken): post, subscribe, publish; a denied token is refused", async () => {
  const authToken = 'allow-amplify';
  assert.equal(await events.post('default/lambda', { via: 'lambda-http' }, { authMode: 'lambda', authToken }), undefined);
  const channel = await withTimeout(events.connect('default/lambda', { authMode: 'lambda', authToken }), 'connect');
  const c = collector();
  const sub = channel.subscribe(c.observer, { authMode: 'lambda', authToken });
  await withTimeout(sub.ready, 'subscription ready');
  await channel.publish({ via: 'lambda-ws' }, { authMode: 'lambda', authToken });
  await c.until(1);
  assert.deepEqual(c.received[0].event, { via: 'lambda-ws' });
  await assert.rejects(
    events.post('default/lambda', { n: 1 }, { authMode: 'lambda', authToken: 'deny-amplify' }),
    (e) => e.name === 'UnauthorizedException',
  );
  sub.unsubscribe();
  await channel.close();
});

test("authMode 'iam' (Amplify's own SigV4 signer): payloads with <, > and non-ASCII over HTTP and WebSocket", async () => {
  const tricky = { html: '<b>bold</b> & <i>x</i>', text: 'héllo ✓ 日本 🎉', esc: 'q " b \\ / \n' };
  assert.equal(await events.post('default/iam', tricky, { authMode: 'iam' }), undefined);
  const channel = await withTimeout(events.connect('default/iam', { authMode: 'iam' }), 'connect');
  const c = collector();
  const sub = channel.subscribe(c.observer, { authMode: 'iam' });
  await withTimeout(sub.ready, 'subscription ready');
  await withTimeout(channel.publish(tricky, { authMode: 'iam' }), 'IAM WebSocket publish');
  await events.post('default/iam', [{ n: 2 }, '<>'], { authMode: 'iam' });
  await c.until(3);
  assert.deepEqual(c.received.map((m) => m.event), [tricky, { n: 2 }, '<>']);
  sub.unsubscribe();
  await channel.close();
});

test('the server counted each mode as the one used', async () => {
  const text = await (await fetch(new URL('/metrics', endpoint))).text();
  const allowed = (mode, op) => {
    const m = new RegExp(`^herald_auth_requests_total\\{mode="${mode}",operation="${op}",result="allowed"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  for (const mode of ['OPENID_CONNECT', 'AWS_LAMBDA', 'AWS_IAM']) {
    for (const op of ['EVENT_PUBLISH', 'EVENT_SUBSCRIBE']) {
      assert.ok(allowed(mode, op) >= 1, `${mode} ${op} was used`);
    }
  }
});
