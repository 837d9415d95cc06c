// The console end to end, in Chromium, against the real example server: each step is what an
// admin does, checked through the page and, where it matters, through the API.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  adminApi, ingest, HOSTILE, assertNoInjection, assertNoHorizontalScroll, openConsole, closeConsole, signIn, assertNoProblems,
} from './support.js';

let server;
let browser;
let page;
const state = {};

before(async () => {
  ({ server, browser, page } = await openConsole());
});

after(async () => {
  await closeConsole({ server, browser });
  // Admin tokens must never reach the server's log (it logs route templates only).
  if (server) {
    assert.ok(!server.logs().includes(server.rootToken), 'the root token is in the log');
    if (state.programToken) assert.ok(!server.logs().includes(state.programToken), 'a program token is in the log');
  }
});

function noProblems() {
  assertNoProblems(browser, assert);
}

test('a wrong token is refused with the API\'s detail', async () => {
  await signIn(page, server.base, 'not-a-valid-token');
  await page.getByRole('alert').filter({ hasText: 'missing or wrong bearer token' }).waitFor();
  noProblems();
});

test('the root signs in, and the token is kept only in session storage', async () => {
  await signIn(page, server.base, server.rootToken);
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

test('signing out forgets the token; a token that stops working brings the sign-in back', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.evaluate(() => {
    sessionStorage.setItem('loyalty.console.token', 'a-token-no-longer-valid');
    sessionStorage.setItem('loyalty.console.who', '{"role": "root"}');
  });
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByRole('alert').filter({ hasText: 'no longer accepted' }).waitFor();
  await page.waitForTimeout(200);
  assert.equal(await page.getByRole('heading', { name: 'Sign in' }).count(), 1);
  noProblems();
});

test('a program token signs in to its own program only', async () => {
  await signIn(page, server.base, state.programToken);
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

/** Sends an event to the Article Read connector with its own token, as a sender would. */
async function sendArticle(event) {
  const [result] = await ingest(server.base, state.connectorId, state.connectorToken, event, { test: true });
  return result;
}

test('playground: the preview follows the mapping as it is edited; compile errors show their position', async () => {
  // A logged event whose every value is hostile, to pick from the log below.
  state.hostileEvent = await sendArticle({
    eventId: `hostile-${Date.now()}`, timestamp: new Date().toISOString(), profile: { email: 'eve@example.com' },
    article: { theme: HOSTILE.script }, totalArticlesRead: 1, note: HOSTILE.image, link: HOSTILE.link, long: HOSTILE.long,
  });
  await page.goto(`${server.base}/console#/p/${state.programId}/playground?connector=${state.connectorId}`);
  const result = page.getByTestId('simulation');
  await result.getByText('accepted', { exact: true }).waitFor();
  await result.getByText('"value": "sport"').waitFor();
  const mapping = page.getByLabel('Mapping (JSONata)');
  const text = await mapping.inputValue();
  await mapping.fill(text.replace('article.theme', '$uppercase(article.theme)'));
  await result.getByText('"value": "SPORT"').waitFor();
  await mapping.fill('{ "a": ');
  await page.getByRole('alert').filter({ hasText: /The mapping does not compile.*/ }).filter({ hasText: /line 1, column \d+/ }).waitFor();
  await mapping.fill(text);
  await result.getByText('"value": "sport"').waitFor();
  noProblems();
});

test('playground: a hostile payload picked from the log is shown as text', async () => {
  await page.getByLabel('Payload from the event log').selectOption(state.hostileEvent.eventId);
  await page.getByTestId('simulation').getByText(HOSTILE.script).first().waitFor();
  assert.ok((await page.getByLabel(/^Payload \(JSON/).inputValue()).includes(HOSTILE.script));
  await assertNoInjection(page, assert);
  noProblems();
});

test('rules: the builder suggests names from recent events and creates the rule', async () => {
  await page.goto(`${server.base}/console#/p/${state.programId}/rules?connector=${state.connectorId}`);
  await page.getByRole('link', { name: 'New rule' }).click();
  await page.getByText('Names seen in this connector\'s recent events: tags theme; counters total.').waitFor();
  await page.getByLabel('Name', { exact: true }).fill('Sport readers');
  await page.getByRole('button', { name: 'Add a condition' }).click();
  let condition = page.getByRole('group', { name: 'Condition', exact: true }).nth(0);
  await condition.getByLabel('Tag name').fill('theme');
  await condition.getByLabel('Tag name').press('Tab');
  assert.equal(await condition.locator('datalist option[value="theme"]').count(), 1);
  await condition.getByLabel('Operator').selectOption('eq');
  await condition.getByLabel('Value').fill('sport');
  await page.getByRole('button', { name: 'Add a condition' }).click();
  condition = page.getByRole('group', { name: 'Condition', exact: true }).nth(1);
  await condition.getByLabel('Test on').selectOption('counter');
  await condition.getByLabel('Counter name').fill('total');
  await condition.getByLabel('Operator').selectOption('gte');
  await condition.getByLabel('Value').fill('5');
  await page.getByLabel('Points awarded').fill('10');
  await page.getByRole('button', { name: 'Add a limit' }).click();
  await page.getByRole('button', { name: 'Create rule' }).click();
  await page.getByText('Rule created.').waitFor().catch(async (error) => {
    throw new Error(`${error.message}\n${await page.locator('main').innerText()}`);
  });
  const { items } = await adminApi(server.base, state.programToken, 'GET', `/v1/programs/${state.programId}/rules?connectorId=${state.connectorId}`);
  assert.equal(items.length, 1);
  assert.deepEqual(items[0].conditions, { all: [{ tag: 'theme', op: 'eq', value: 'sport' }, { counter: 'total', op: 'gte', value: 5 }] });
  assert.deepEqual(items[0].points, { fixed: 10 });
  assert.deepEqual(items[0].limits, [{ count: 1, per: 'day' }]);
  state.ruleId = items[0].id;
  noProblems();
});

test('playground: the rule trace shows the new rule firing', async () => {
  await page.goto(`${server.base}/console#/p/${state.programId}/playground?connector=${state.connectorId}`);
  const result = page.getByTestId('simulation');
  await result.getByText('10 points').waitFor();
  await result.getByRole('cell', { name: 'Sport readers' }).waitFor();
  noProblems();
});

test('test events: sent through the connector\'s own authentication, then found in the log with their trace', async () => {
  await page.goto(`${server.base}/console#/p/${state.programId}/testing?connector=${state.connectorId}`);
  const payload = { eventId: `t-${Date.now()}`, timestamp: new Date().toISOString(), profile: { email: 'Ann@Example.com' }, article: { theme: 'sport' }, totalArticlesRead: 7 };
  await page.getByLabel('Payload (JSON)').fill(JSON.stringify(payload, null, 2));
  await page.getByLabel('Connector token').fill(state.connectorToken);
  await page.getByRole('button', { name: 'Send as a test event' }).click();
  const result = page.getByTestId('test-result');
  await result.getByText('Sent: 1 accepted, 0 duplicate, 0 ignored, 0 rejected.').waitFor();
  await result.getByRole('cell', { name: '10', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Simulate (store nothing)' }).click();
  await result.getByText('Simulated: nothing was stored.').waitFor();
  await result.getByText('duplicate', { exact: true }).waitFor();

  // A rejected one, to filter by status.
  await page.getByLabel('Payload (JSON)').fill(JSON.stringify({ ...payload, eventId: `r-${Date.now()}`, timestamp: 'not a time' }));
  await page.getByRole('button', { name: 'Send as a test event' }).click();
  await result.getByText('Sent: 0 accepted, 0 duplicate, 0 ignored, 1 rejected.').waitFor();

  await page.goto(`${server.base}/console#/p/${state.programId}/events`);
  await page.getByRole('heading', { name: 'Event log' }).waitFor();
  await page.getByLabel('Status').selectOption('rejected');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/status=rejected/);
  // The filtered page has replaced the whole log once no accepted item is left.
  await page.getByRole('cell', { name: /^accepted/ }).first().waitFor({ state: 'detached' });
  await page.getByRole('cell', { name: /rejected \(validation_failed\)/ }).waitFor();
  await page.getByLabel('Status').selectOption('accepted');
  await page.getByLabel('Connector').selectOption(state.connectorId);
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/status=accepted/);
  await page.getByRole('cell', { name: /^rejected/ }).first().waitFor({ state: 'detached' });
  await page.getByRole('row').filter({ hasText: payload.eventId }).getByRole('link').first().click();
  await page.getByRole('heading', { name: /^Event / }).waitFor();
  await page.getByRole('cell', { name: 'Sport readers' }).waitFor();
  await page.getByLabel('Raw payload').filter({ hasText: 'Ann@Example.com' }).waitFor();
  await page.getByLabel('Mapped event').filter({ hasText: '"theme"' }).waitFor();
  state.memberId = await page.locator('dt:text-is("Member") + dd a').textContent();
  noProblems();
});

test('event log: a hostile item is shown as text, and fits a 390 px screen', async () => {
  await page.goto(`${server.base}/console#/p/${state.programId}/events/${state.hostileEvent.eventId}`);
  await page.getByLabel('Raw payload').filter({ hasText: HOSTILE.long }).waitFor();
  await page.getByLabel('Raw payload').filter({ hasText: 'onerror' }).waitFor();
  await assertNoInjection(page, assert);
  await page.setViewportSize({ width: 390, height: 800 });
  await assertNoHorizontalScroll(page, assert);
  await page.goto(`${server.base}/console#/p/${state.programId}/events`);
  await page.getByRole('heading', { name: 'Event log' }).waitFor();
  await assertNoHorizontalScroll(page, assert);
  await page.setViewportSize({ width: 1280, height: 800 });
  noProblems();
});

test('members: found by identifier, with the balance and the activity', async () => {
  await page.goto(`${server.base}/console#/p/${state.programId}/members`);
  await page.getByLabel('Identifier', { exact: true }).fill('ann@example.com');
  await page.getByRole('button', { name: 'Find member' }).click();
  await page.getByRole('heading', { name: `Member ${state.memberId}` }).waitFor();
  assert.equal(await page.getByTestId('balance').textContent(), '10');
  await page.getByRole('row').filter({ has: page.getByRole('cell', { name: 'award', exact: true }) }).getByRole('cell', { name: 'Sport readers' }).waitFor();
  await page.getByTestId('allowance').getByRole('cell', { name: 'Sport readers' }).waitFor();
  noProblems();
});

test('purge: the connector\'s test data is deleted and counted; the test member is gone', async () => {
  await page.goto(`${server.base}/console#/p/${state.programId}/testing?connector=${state.connectorId}`);
  await page.getByRole('button', { name: 'Purge test data…' }).click();
  await page.getByRole('button', { name: 'Yes, purge the test data' }).click();
  // The hostile event, the accepted one and the rejected one; the award; ann and eve.
  await page.getByText('Purged 3 events, 1 ledger entries and 2 members.').waitFor();
  await page.goto(`${server.base}/console#/p/${state.programId}/members`);
  await page.getByLabel('Identifier', { exact: true }).fill('ann@example.com');
  await page.getByRole('button', { name: 'Find member' }).click();
  await page.getByRole('alert').filter({ hasText: 'No member has this identifier' }).waitFor();
  noProblems();
});

test('playground: a mapping saved from the playground is the connector\'s', async () => {
  await page.goto(`${server.base}/console#/p/${state.programId}/playground?connector=${state.connectorId}`);
  await page.getByTestId('simulation').getByText('accepted', { exact: true }).waitFor();
  const mapping = page.getByLabel('Mapping (JSONata)');
  const changed = (await mapping.inputValue()).replace('article.theme', '$lowercase(article.theme)');
  await mapping.fill(changed);
  await page.getByRole('button', { name: 'Save mapping to the connector' }).click();
  await page.getByText(/Mapping saved \(revision \d+\)\./).waitFor();
  const connector = await adminApi(server.base, state.programToken, 'GET', `/v1/programs/${state.programId}/connectors/${state.connectorId}`);
  assert.equal(connector.mapping, changed);
  // The PUT left the token out, so the sender's token still works.
  const result = await sendArticle({ eventId: `after-save-${Date.now()}`, timestamp: new Date().toISOString(), profile: { email: 'zoe@example.com' }, article: { theme: 'News' }, totalArticlesRead: 1 });
  assert.equal(result.status, 'accepted');
  noProblems();
});
