// Starts `herald serve` with a self-signed certificate, then runs the Amplify
// interop tests (and the console test, which starts its own server) in a child Node process that trusts it (NODE_EXTRA_CA_CERTS is
// read only at process start, and the certificate exists only once herald ran).
//
// HERALD_BIN names the binary (default: ../../target/debug/herald).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.HERALD_BIN ?? join(here, '../../target/debug/herald');
const key = 'da2-amplifyinterop00000000000';
const dir = mkdtempSync(join(tmpdir(), 'herald-interop-'));

const server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--tls-self-signed', dir, '--api-key', key], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const addr = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('herald serve printed no banner in 20 s')), 20000);
  server.on('exit', (code) => reject(new Error(`herald serve exited early (${code})`)));
  createInterface({ input: server.stdout }).on('line', (line) => {
    const m = /^Herald listening on (\S+)$/.exec(line);
    if (m) {
      clearTimeout(timer);
      resolve(m[1]);
    }
  });
});

const tests = spawn(process.execPath, ['--test', '--test-force-exit', '--test-concurrency=1', '--test-reporter=spec', join(here, 'amplify.test.mjs'), join(here, 'console.test.mjs')], {
  stdio: 'inherit',
  env: {
    ...process.env,
    NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'),
    HERALD_ENDPOINT: `https://${addr}/event`,
    HERALD_API_KEY: key,
    HERALD_CA_CERT: join(dir, 'cert.pem'),
    HERALD_BIN: bin,
  },
});
const code = await new Promise((resolve) => tests.on('exit', (c) => resolve(c ?? 1)));
server.removeAllListeners('exit');
server.kill('SIGTERM');
await new Promise((resolve) => server.on('exit', resolve));
rmSync(dir, { recursive: true, force: true });
process.exit(code);
