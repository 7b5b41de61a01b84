// The admin console in a real browser: Debian's headless Chromium driven by
// playwright-core, against a real strikemq process, checked with real Kafka clients
// (kcat) and the JSON API. Run: `npm ci && npm test` here, after `cargo build -p
// strikemq` (STRIKEMQ_BIN overrides the binary, CHROMIUM the browser).
// STRIKEMQ_SCREENSHOT_DIR=docs/console writes one screenshot per console page there.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../../..');
const BROKER_BIN = process.env.STRIKEMQ_BIN
  || join(process.env.CARGO_TARGET_DIR || join(REPO, 'target'), 'debug', 'strikemq');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const KCAT = process.env.KCAT || '/usr/bin/kcat';
const SCREENSHOTS = process.env.STRIKEMQ_SCREENSHOT_DIR
  ? resolve(REPO, process.env.STRIKEMQ_SCREENSHOT_DIR)
  : join(tmpdir(), 'strikemq-console-screenshots');
// Every wait is bounded; a hang fails the test with what it waited for.
const READY_TIMEOUT_MS = 10_000;
const UI_TIMEOUT_MS = 10_000;
const KCAT_TIMEOUT_MS = 30_000;
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let broker;
let context;
let page;
let root;
let liveConsumer;
const pageErrors = [];

// ------------------------------------------------------------------- harness

function startBroker(dataDir) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(BROKER_BIN, ['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--data-dir', dataDir],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no ready line from ${BROKER_BIN} within ${READY_TIMEOUT_MS} ms:\n${log}`));
    }, READY_TIMEOUT_MS);
    child.stderr.on('data', (d) => { log += d; });
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${BROKER_BIN} (cargo build -p strikemq first): ${e.message}`)); });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /strikemq ready kafka=(\S+) admin=(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ child, kafka: m[1], admin: `http://${m[2]}`, log: () => log });
      }
    });
  });
}

// A request as a script would send it: no Origin, no browser headers.
async function rest(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await fetch(`${broker.admin}${path}`, options);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

function kcat(args) {
  const result = spawnSync(KCAT, ['-b', broker.kafka, '-X', 'broker.address.family=v4', ...args],
    { encoding: 'utf8', timeout: KCAT_TIMEOUT_MS });
  assert.equal(result.error, undefined, `kcat ${args.join(' ')}: ${result.error}`);
  assert.equal(result.status, 0, `kcat ${args.join(' ')} exited ${result.status}:\n${result.stderr}`);
  return result.stdout;
}

async function screenshot(name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function openPage(name) {
  await page.click(`#nav a[data-page="${name}"]`);
  await page.waitForSelector(`#page-${name}:not([hidden])`, { timeout: UI_TIMEOUT_MS });
}

// An HTTP server on another loopback port: the "other site" of the cross-site tests.
function serveAttackPage(html) {
  return new Promise((resolvePromise) => {
    const server = createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(html);
    });
    server.listen(0, '127.0.0.1', () => resolvePromise(server));
  });
}

before(async () => {
  for (const [what, path, install] of [
    ['the strikemq binary', BROKER_BIN, 'cargo build -p strikemq'],
    ['Chromium', CHROMIUM, 'apt-get install -y chromium'],
    ['kcat', KCAT, 'apt-get install -y kcat'],
  ]) {
    assert.ok(existsSync(path), `${what} is missing at ${path}: ${install}`);
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  root = mkdtempSync(join(tmpdir(), 'strikemq-browser-'));
  broker = await startBroker(join(root, 'data'));
  context = await chromium.launchPersistentContext(join(root, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 800 },
    timeout: 30_000,
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  // Any script error or CSP violation on the console fails the run (checked in after()).
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  // A 4xx the tests provoke on purpose is logged by Chromium too; anything else
  // (a CSP violation, a script error) is not expected.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) {
      pageErrors.push(`console: ${m.text()}`);
    }
  });
  page.on('dialog', (d) => d.accept());
});

after(async () => {
  liveConsumer?.kill('SIGTERM');
  await context?.close();
  if (broker) {
    broker.child.kill('SIGTERM');
    await new Promise((r) => broker.child.once('exit', r));
  }
  if (root) rmSync(root, { recursive: true, force: true });
  assert.deepEqual(pageErrors, [], 'the console logged errors');
});

// ------------------------------------------------------------------- tests

test('the console loads from the binary and shows the broker overview', async () => {
  const response = await page.goto(`${broker.admin}/`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
  const info = (await rest('GET', '/v1/broker')).body;
  await page.waitForFunction((v) => document.getElementById('overview-version')?.textContent.includes(v), info.version);
  // The effective configuration lists every key, live values included.
  await page.waitForSelector('#overview-config tbody tr:nth-child(10)');
  const keys = await page.$$eval('#overview-config tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
  for (const key of Object.keys(info.effective_config)) assert.ok(keys.includes(key), `overview lacks ${key}`);
  await page.waitForSelector('#status.ok');
});

test('a topic created in the console exists with its partitions', async () => {
  await openPage('topics');
  await page.fill('#topic-name', 'browser-demo');
  await page.fill('#topic-partitions', '2');
  await page.click('#topic-create-button');
  await page.waitForSelector('#topics-table tr[data-topic="browser-demo"]');
  const topic = await rest('GET', '/v1/topics/browser-demo');
  assert.equal(topic.status, 200);
  assert.equal(topic.body.partition_count, 2);
  // Deleting from the console removes it (the confirm dialog is accepted).
  await page.fill('#topic-name', 'browser-doomed');
  await page.click('#topic-create-button');
  await page.click('#topics-table tr[data-topic="browser-doomed"] button.delete');
  await page.waitForSelector('#topics-table tr[data-topic="browser-doomed"]', { state: 'detached' });
  assert.equal((await rest('GET', '/v1/topics/browser-doomed')).status, 404);
});

test('a message produced in the browser is read back by kcat and peeked', async () => {
  await openPage('topics');
  await page.click('#topics-table tr[data-topic="browser-demo"] button.browse');
  await page.waitForSelector('#page-messages:not([hidden])');
  await page.fill('#produce-key', 'k-browser');
  await page.fill('#produce-value', 'hello from chromium');
  await page.fill('#produce-headers', 'trace=pw');
  await page.fill('#produce-partition', '1');
  await page.click('#produce-button');
  await page.waitForFunction(() => /partition 1 at offset 0/.test(document.getElementById('produce-result').textContent));
  await page.waitForFunction(() => document.querySelector('#peek-table tbody td.value')?.textContent === 'hello from chromium');
  const consumed = kcat(['-C', '-t', 'browser-demo', '-p', '1', '-e', '-q', '-f', '%k|%s|%h\n']);
  assert.equal(consumed, 'k-browser|hello from chromium|trace=pw\n');
  await screenshot('messages');
});

test("a group's lag shows after a consumer commits", async () => {
  // The topic is auto-created by the REST produce, as a Kafka Produce would.
  const first = await rest('POST', '/v1/topics/lag-demo/messages', { messages: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const consumed = kcat(['-G', 'console-group', 'lag-demo', '-c', '3', '-f', '%o\n',
    '-X', 'auto.offset.reset=earliest', '-X', 'session.timeout.ms=6000', '-X', 'heartbeat.interval.ms=500']);
  assert.equal(consumed, '0\n1\n2\n');
  const more = await rest('POST', '/v1/topics/lag-demo/messages', { messages: [{ value: 'd' }, { value: 'e' }] });
  assert.equal(more.status, 200);
  await openPage('groups');
  await page.waitForFunction(() =>
    document.querySelector('#groups-table tr[data-group="console-group"] td.lag')?.textContent === '2');
  await page.waitForFunction(() => document.querySelector('#group-offsets tbody td.lag')?.textContent === '2');

  // A member that stays: the console shows it with its decoded assignment.
  liveConsumer = spawn(KCAT, ['-b', broker.kafka, '-X', 'broker.address.family=v4', '-G', 'console-live', 'lag-demo',
    '-q', '-X', 'auto.offset.reset=earliest', '-X', 'session.timeout.ms=6000', '-X', 'heartbeat.interval.ms=500'],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  await page.waitForSelector('#groups-table tr[data-group="console-live"]', { timeout: 20_000 });
  await page.click('#groups-table tr[data-group="console-live"]');
  await page.waitForFunction(() => document.getElementById('group-detail').textContent.includes('lag-demo: [0]'),
    null, { timeout: 20_000 });
  await screenshot('groups');
});

test('the overview shows connections and request rates', async () => {
  await openPage('overview');
  await page.waitForFunction(() => Number(document.querySelector('#overview-connections .value')?.textContent) >= 1);
  await page.waitForFunction(() => [...document.querySelectorAll('#overview-rates tbody td:first-child')]
    .some((td) => td.textContent === 'Heartbeat'));
  await screenshot('overview');
  // The topics page with some data in it: sizes come from /metrics once sampled.
  await openPage('topics');
  await page.waitForFunction(() => document.querySelector('#topics-table tr[data-topic="lag-demo"] td:nth-child(4)')
    ?.textContent.endsWith('B'));
  await screenshot('topics');
});

test('the latency chart draws the broker\'s own histograms every second', async () => {
  await openPage('latency');
  // A little steady traffic: a kcat producer about every half second for 8 s.
  const until = Date.now() + 8_000;
  while (Date.now() < until) {
    spawnSync(KCAT, ['-b', broker.kafka, '-X', 'broker.address.family=v4', '-P', '-t', 'latency-demo'],
      { input: 'one\ntwo\nthree\n', timeout: KCAT_TIMEOUT_MS });
    await page.waitForTimeout(400);
  }
  await page.waitForFunction(() => [...document.querySelectorAll('#latency-table tbody td:first-child')]
    .some((td) => td.textContent === 'Produce'));
  // Something was drawn: the canvas is not blank.
  const inked = await page.$eval('#latency-chart', (c) => {
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
    return n;
  });
  assert.ok(inked > 1000, `chart almost empty (${inked} pixels)`);
  await screenshot('latency');
});

test('changing flush in the console changes the broker, generically for every live key', async () => {
  await openPage('config');
  const live = (await rest('GET', '/v1/config')).body;
  await page.waitForSelector('#config-table tr[data-key="flush"]');
  const keys = await page.$$eval('#config-table tbody tr', (trs) => trs.map((tr) => tr.dataset.key));
  assert.deepEqual(keys, Object.keys(live), 'one row per key of GET /v1/config');
  await page.fill('#config-flush', 'always');
  await page.click('#config-flush-apply');
  await page.waitForFunction(() => document.getElementById('config-flush-result').textContent === 'now always');
  assert.equal((await rest('GET', '/v1/config')).body.flush, 'always');
  await page.fill('#config-loop_timeout_ms', '5');
  await page.press('#config-loop_timeout_ms', 'Enter');
  await page.waitForFunction(() => document.getElementById('config-loop_timeout_ms-result').textContent === 'now 5');
  assert.equal((await rest('GET', '/v1/config')).body.loop_timeout_ms, 5);
  // A bad value is refused by the broker and its message shown.
  await page.fill('#config-flush', 'sometimes');
  await page.click('#config-flush-apply');
  await page.waitForFunction(() => document.getElementById('config-flush-result').textContent.startsWith('400'));
  assert.equal((await rest('GET', '/v1/config')).body.flush, 'always');
  await page.reload();
  await page.waitForSelector('#config-table tr[data-key="flush"]');
  await screenshot('config');
});

test('a page of another origin changes nothing: no-cors fetch and form post get 403', async () => {
  const target = await rest('POST', '/v1/topics', { name: 'csrf-target', partitions: 1 });
  assert.equal(target.status, 201);
  const state = async () => JSON.stringify([
    (await rest('GET', '/v1/config')).body,
    (await rest('GET', '/v1/topics')).body,
  ]);
  const before = await state();
  const admin = broker.admin;
  const attack = `<!doctype html><html><body>
    <form id="f" method="POST" action="${admin}/v1/topics/csrf-target/messages" enctype="text/plain">
      <input name='{"messages":[{"value":"csrf","key":"' value='x"}]}'>
    </form>
    <script>
      window.fetched = Promise.all([
        fetch('${admin}/v1/topics', { method: 'POST', mode: 'no-cors', body: '{"name":"csrf-fetch"}' }),
        fetch('${admin}/v1/topics/csrf-target/messages', { method: 'POST', mode: 'no-cors',
          headers: { 'Content-Type': 'text/plain' }, body: '{"messages":[{"value":"csrf"}]}' }),
      ]).then(() => 'sent', (e) => 'failed: ' + e);
    </script></body></html>`;
  const server = await serveAttackPage(attack);
  const port = server.address().port;
  try {
    // 127.0.0.1:<other port> is same-site but another origin; localhost is another site.
    for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
      const other = await context.newPage();
      const statuses = [];
      other.on('response', (r) => { if (r.url().startsWith(admin)) statuses.push([r.request().method(), r.url(), r.status()]); });
      await other.goto(`${origin}/`);
      assert.equal(await other.evaluate(() => window.fetched), 'sent');
      const navigation = other.waitForNavigation();
      await other.evaluate(() => document.getElementById('f').submit());
      const formResponse = await navigation;
      assert.equal(formResponse.status(), 403, `form post from ${origin}`);
      assert.match(await other.textContent('body'), /cross-site request protection/);
      assert.equal(statuses.length, 3, `${origin}: ${JSON.stringify(statuses)}`);
      for (const [method, url, status] of statuses) assert.equal(status, 403, `${method} ${url} from ${origin}`);
      await other.close();
    }
  } finally {
    server.close();
  }
  assert.equal(await state(), before, 'a cross-site request changed the broker');
  assert.equal((await rest('GET', '/v1/topics/csrf-fetch')).status, 404);
});
