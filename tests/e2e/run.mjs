// Starts the services the end-to-end tests need, then runs them:
// - a local OIDC issuer (discovery + JWKS, an EC key made here) and a
//   Lambda-style authorizer, both small node:http servers;
// - `herald serve` with a self-signed certificate and a config that enables
//   API_KEY, OPENID_CONNECT, AWS_LAMBDA and AWS_IAM;
// - the Amplify tests in a child Node process that trusts the certificate
//   (NODE_EXTRA_CA_CERTS is read only at process start), and the console test
//   (which starts its own plain-HTTP server).
//
// HERALD_BIN names the binary (default: ../../target/debug/herald).
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.HERALD_BIN ?? join(here, '../../target/debug/herald');
const key = 'da2-amplifyinterop00000000000';
const dir = mkdtempSync(join(tmpdir(), 'herald-e2e-'));

// The OIDC issuer's signing key: the tests sign tokens with the private half.
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'e2e-1', use: 'sig', alg: 'ES256' };
writeFileSync(join(dir, 'jwt-key.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }));

const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
const json = (res, body) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };

let issuer;
const idp = createServer((req, res) => {
  if (req.url === '/.well-known/openid-configuration') return json(res, { issuer, jwks_uri: `${issuer}/jwks.json` });
  if (req.url === '/jwks.json') return json(res, { keys: [jwk] });
  res.writeHead(404).end();
});
issuer = `http://127.0.0.1:${await listen(idp)}`;

// The authorizer allows tokens starting with "allow-" and says who they are.
const authorizer = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const { authorizationToken } = JSON.parse(body);
    json(res, { isAuthorized: authorizationToken.startsWith('allow-'), handlerContext: { token: authorizationToken } });
  });
});
const authorizerUrl = `http://127.0.0.1:${await listen(authorizer)}/authorize`;

const iam = { accessKeyId: 'AKIDAMPLIFYE2E000001', secretAccessKey: 'e2e/secret+amplify000000000000000000000' };
const config = join(dir, 'herald.toml');
writeFileSync(config, `
aws_region = "us-east-1"
[event_config]
auth_providers = [
  { auth_type = "API_KEY" },
  { auth_type = "OPENID_CONNECT", open_id_connect_config = { issuer = "${issuer}", client_id = "amplify-.*" } },
  { auth_type = "AWS_LAMBDA", lambda_authorizer_config = { authorizer_uri = "${authorizerUrl}" } },
  { auth_type = "AWS_IAM" },
]
[[api_keys]]
id = "${key}"
[[iam_credentials]]
access_key_id = "${iam.accessKeyId}"
secret_access_key = "${iam.secretAccessKey}"
principal = "arn:aws:iam::123456789012:user/amplify"
allow = [{ actions = ["*"] }]
# With history: the Amplify tests run unchanged on a namespace that keeps it
# (its data frames carry offset and epoch, which Amplify ignores).
[[channel_namespaces]]
name = "default"
history = { size = 1000, ttl_secs = 300 }
`);

const server = spawn(bin, ['serve', '--config', config, '--listen', '127.0.0.1:0', '--tls-self-signed', dir], {
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

const tests = spawn(process.execPath, ['--test', '--test-force-exit', '--test-concurrency=1', '--test-reporter=spec',
  join(here, 'amplify.test.mjs'), join(here, 'recovery.test.mjs'), join(here, 'console.test.mjs')], {
  stdio: 'inherit',
  env: {
    ...process.env,
    NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'),
    HERALD_ENDPOINT: `https://${addr}/event`,
    HERALD_API_KEY: key,
    HERALD_CA_CERT: join(dir, 'cert.pem'),
    HERALD_BIN: bin,
    HERALD_OIDC_ISSUER: issuer,
    HERALD_JWT_KEY: join(dir, 'jwt-key.pem'),
    HERALD_IAM_KEY_ID: iam.accessKeyId,
    HERALD_IAM_SECRET: iam.secretAccessKey,
  },
});
const code = await new Promise((resolve) => tests.on('exit', (c) => resolve(c ?? 1)));
server.removeAllListeners('exit');
server.kill('SIGTERM');
await new Promise((resolve) => server.on('exit', resolve));
idp.close();
authorizer.close();
rmSync(dir, { recursive: true, force: true });
process.exit(code);
