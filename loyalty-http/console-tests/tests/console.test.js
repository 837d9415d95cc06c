// The console end to end, in Chromium, against the real example server: each step is what an
// admin does, checked through the page and, where it matters, through the API.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  startServer, openBrowser, adminApi, HOSTILE, assertNoInjection, assertNoHorizontalScroll,
} from './support.js';

let server;
let browser;
let page;
const state = {};

before(async () => {
  server = await startServer();
  browser = await openBrowser(server.base);
  page = browser.page;
});

after(async () => {
  await browser?.close();
  await server?.stop();
  // Admin tokens must never reach the server's log (it logs route templates only).
  if (server) {
    assert.ok(!server.logs().includes(server.rootToken), 'the root token is in the log');
    if (state.programToken) assert.ok(!server.logs().includes(state.programToken), 'a program token is in the log');
  }
});

/** Fails the step on any script error, CSP violation, dialog or foreign request so far. */
function noProblems() {
  assert.deepEqual(browser.problems, []);
}

async function signIn(token) {
  await page.goto(`${server.base}/console`);
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('a wrong token is refused with the API\'s detail', async () => {
  await signIn('not-a-valid-token');
  await page.getByRole('alert').filter({ hasText: 'missing or wrong bearer token' }).waitFor();
  noProblems();
});

test('the root signs in, and the token is kept only in session storage', async () => {
  await signIn(server.rootToken);
  await page.getByRole('heading', { name: 'Programs' }).waitFor();
  const stored = await page.evaluate(() => ({
    session: Object.values(sessionStorage).join(' '),
    local: Object.values(localStorage).join(' '),
    url: location.href,
    cookies: document.cookie,
  }));
  assert.ok(stored.session.includes(server.rootToken));
  assert.ok(!stored.local.includes(server.rootToken));
  assert.ok(!stored.url.includes(server.rootToken));
  assert.equal(stored.cookies, '');
  noProblems();
});

test('programs: create one with a hostile name; its token is shown once', async () => {
  await page.getByLabel('Name', { exact: true }).fill(`Readers ${HOSTILE.image} ${HOSTILE.script}`);
  await page.getByRole('button', { name: 'Create program' }).click();
  const token = page.getByLabel('The new program\'s admin token');
  await token.waitFor();
  state.programToken = await token.inputValue();
  assert.match(state.programToken, /^lpt_prg_/);
  await page.getByRole('cell', { name: /Readers <img src=x/ }).waitFor();
  await assertNoInjection(page, assert);
  const me = await adminApi(server.base, state.programToken, 'GET', '/v1/me');
  state.programId = me.programId;
  noProblems();
});

test('a program token signs in to its own program only', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(state.programToken);
  await page.getByRole('heading', { name: 'Connectors' }).waitFor();
  assert.ok(page.url().includes(state.programId));
  assert.equal(await page.getByRole('link', { name: 'Programs' }).count(), 0);
  noProblems();
});

test('connectors: create one with a hostile name; the generated token fills the request', async () => {
  await page.getByRole('link', { name: 'New connector' }).click();
  await page.getByLabel('Name', { exact: true }).fill(`Article Read ${HOSTILE.script}`);
  await page.getByRole('button', { name: 'Create connector' }).click();
  await page.getByText('Connector created.').waitFor();
  const generated = await page.getByLabel('Generated token or secrets').inputValue();
  const curl = page.getByTestId('curl');
  await assert.doesNotReject(curl.filter({ hasText: `token=${generated}` }).waitFor());
  state.connectorId = page.url().split('/connectors/')[1];
  state.connectorToken = generated;
  await page.getByRole('heading', { name: `Article Read ${HOSTILE.script}` }).waitFor();
  await assertNoInjection(page, assert);
  noProblems();
});

test('connectors: an invalid mapping is refused with its position', async () => {
  const mapping = page.getByLabel('Mapping (JSONata)');
  await mapping.fill('{ "a": ');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('alert').filter({ hasText: /line 1, column/ }).waitFor();
  noProblems();
});

/** The request the console shows, parsed back: url, headers, body. */
async function shownRequest() {
  const text = await page.getByTestId('curl').textContent();
  const unquote = (s) => s.replaceAll("'\\''", "'");
  const url = unquote(text.match(/-X POST '((?:[^']|'\\'')*)'/)[1]);
  const headers = {};
  for (const [, header] of text.matchAll(/-H '((?:[^']|'\\'')*)'/g)) {
    const [name, ...value] = unquote(header).split(': ');
    headers[name] = value.join(': ');
  }
  const body = unquote(text.match(/--data-binary '((?:[^']|'\\'')*)'$/)[1]);
  return { url, headers, body };
}

test('connectors: hubSignature and Standard Webhooks requests are signed in the browser, and accepted', async () => {
  const secrets = { hubSignature: 'hub-secret-for-the-console', standardWebhooks: `whsec_${Buffer.from('a standard webhooks key 32 bytes').toString('base64')}` };
  for (const scheme of ['hubSignature', 'standardWebhooks']) {
    const created = await adminApi(server.base, state.programToken, 'POST', `/v1/programs/${state.programId}/connectors`, {
      name: `Signed ${scheme}`, eventType: 'custom.basic', auth: { type: scheme, secrets: [secrets[scheme]] },
      mapping: '{"profile": {"kind": "email", "value": email}, "payload": {"timestamp": ts}}',
    });
    await page.goto(`${server.base}/console#/p/${state.programId}/connectors/${created.id}`);
    await page.getByLabel('Secret to sign with').fill(secrets[scheme]);
    await page.getByLabel('Request body').fill(JSON.stringify({ email: `${scheme}@example.com`, ts: new Date().toISOString(), note: "it's" }));
    await page.getByTestId('curl').filter({ hasText: scheme === 'hubSignature' ? 'sha256=' : 'webhook-signature' }).waitFor();
    await page.waitForTimeout(300);
    const request = await shownRequest();
    if (scheme === 'hubSignature') {
      const expected = createHmac('sha256', secrets[scheme]).update(request.body).digest('hex');
      assert.equal(request.headers['X-Hub-Signature-256'], `sha256=${expected}`);
    } else {
      const key = Buffer.from(secrets[scheme].slice('whsec_'.length), 'base64');
      const signed = `${request.headers['webhook-id']}.${request.headers['webhook-timestamp']}.${request.body}`;
      assert.equal(request.headers['webhook-signature'], `v1,${createHmac('sha256', key).update(signed).digest('base64')}`);
    }
    const response = await fetch(request.url, { method: 'POST', headers: request.headers, body: request.body });
    const answer = await response.json();
    assert.equal(response.status, 200, JSON.stringify(answer));
    assert.equal(answer.results[0].status, 'accepted', JSON.stringify(answer));
  }
  noProblems();
});

test('connectors: the list is readable at 390 px wide, and delete asks first', async () => {
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(`${server.base}/console#/p/${state.programId}/connectors`);
  await page.getByRole('heading', { name: 'Connectors' }).waitFor();
  await assertNoHorizontalScroll(page, assert);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByRole('link', { name: 'Signed hubSignature' }).click();
  await page.getByRole('button', { name: 'Delete connector…' }).click();
  await page.getByRole('button', { name: 'Yes, delete Signed hubSignature' }).click();
  await page.getByRole('heading', { name: 'Connectors' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Signed hubSignature' }).count(), 0);
  noProblems();
});
