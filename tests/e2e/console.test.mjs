// The web console in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core): connect with a key, subscribe to /default/*, publish from the
// page, see the event; an event from `herald publish` appears too. A screenshot
// is saved to tests/e2e/artifacts/console.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.HERALD_BIN ?? join(here, '../../target/debug/herald');
const key = 'da2-consoletest0000000000000000';
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const WAIT = { timeout: 10000 };

let server;
let addr;
let browser;

before(async () => {
  server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--api-key', key, '--console'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no banner from herald serve')), 20000);
    createInterface({ input: server.stdout }).on('line', (line) => {
      const m = /^Herald listening on (\S+)$/.exec(line);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
});

async function openConsole() {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  await page.goto(`http://${addr}/console`);
  return { page, problems };
}

test('connect, subscribe to /default/*, publish from the page and from the CLI', async () => {
  const { page, problems } = await openConsole();
  await page.fill('#api-key', key);
  await page.click('#connect');
  await page.waitForFunction(() => document.querySelector('#status').dataset.state === 'connected', null, WAIT);

  await page.fill('#sub-channel', '/default/*');
  await page.click('#subscribe');
  await page.waitForSelector('#subs li[data-state="active"]', WAIT);

  await page.fill('#pub-channel', '/default/console');
  await page.fill('#pub-event', '{"from": "page", "n": 1}');
  await page.click('#publish-ws');
  await page.waitForFunction(() => [...document.querySelectorAll('.event pre')].some((p) => p.textContent.includes('"page"')), null, WAIT);
  await page.waitForFunction(() => document.querySelector('#pub-result').textContent.includes('Published 1 event'), null, WAIT);

  // Over HTTP from the page as well.
  await page.fill('#pub-event', '{"from": "page-http"}');
  await page.click('#publish-http');
  await page.waitForFunction(() => [...document.querySelectorAll('.event pre')].some((p) => p.textContent.includes('page-http')), null, WAIT);

  // An event published by `herald publish` appears.
  const { stdout } = await promisify(execFile)(bin, ['publish', '/default/cli/deep', '{"from":"cli"}', '--endpoint', `http://${addr}/event`, '--api-key', key]);
  assert.equal(JSON.parse(stdout).successful.length, 1);
  await page.waitForFunction(() => [...document.querySelectorAll('.event pre')].some((p) => p.textContent.includes('"cli"')), null, WAIT);
  assert.equal(await page.textContent('#event-count'), '3');

  // The live view shows this connection and subscription.
  await page.waitForFunction(() => document.querySelector('#stat-connections').textContent === '1'
    && document.querySelector('#stat-subscriptions').textContent === '1', null, WAIT);

  // The key appears nowhere on the page except the field it was typed into.
  const text = await page.evaluate(() => document.body.innerText + document.documentElement.outerHTML);
  assert.ok(!text.includes(key), 'the key is not shown');

  mkdirSync(join(here, 'artifacts'), { recursive: true });
  await page.screenshot({ path: join(here, 'artifacts', 'console.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test('the page may not open WebSocket connections to another origin', async () => {
  const { page } = await openConsole();
  const port = addr.split(':').pop();
  // 127.0.0.2 reaches the same server, but is another origin: the CSP must block it.
  const violation = await page.evaluate((port) => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve({ directive: e.effectiveDirective, blocked: e.blockedURI }));
    try { new WebSocket(`ws://127.0.0.2:${port}/event/realtime`, ['aws-appsync-event-ws']); } catch (e) { resolve({ directive: 'thrown', blocked: String(e) }); }
    setTimeout(() => resolve(null), 5000);
  }), port);
  assert.ok(violation, 'a WebSocket to another origin was not blocked');
  assert.ok(violation.directive === 'connect-src' || violation.directive === 'thrown', JSON.stringify(violation));
  // The same origin is allowed.
  const same = await page.evaluate((addr) => new Promise((resolve) => {
    const ws = new WebSocket(`ws://${addr}/event/realtime`, ['aws-appsync-event-ws']);
    ws.onopen = () => { ws.close(); resolve('open'); };
    ws.onerror = () => resolve('error');
  }), addr);
  assert.equal(same, 'open');
  await page.close();
});

test('a wrong key is refused with the AppSync message', async () => {
  const { page } = await openConsole();
  await page.fill('#api-key', 'da2-wrongwrongwrongwrongwrong0');
  await page.click('#connect');
  await page.waitForFunction(() => document.querySelector('#status').dataset.state === 'error', null, WAIT);
  assert.match(await page.textContent('#connect-msg'), /You are not authorized to make this call/);
  await page.close();
});
