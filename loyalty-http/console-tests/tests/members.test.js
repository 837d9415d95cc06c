// The life of points in the console: a member's balance, pending and expiring points and
// allowance; adjustments by hand; an event's points reversed; API errors shown with their
// detail; hostile reasons shown as text.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  adminApi, ingest, HOSTILE, assertNoInjection, openConsole, closeConsole, signIn, assertNoProblems,
} from './support.js';

let server;
let browser;
let page;
const ids = {};

before(async () => {
  ({ server, browser, page } = await openConsole());
});

after(async () => {
  await closeConsole({ server, browser });
});

function noProblems() {
  assertNoProblems(browser, assert);
}

const api = (method, path, body) => adminApi(server.base, server.rootToken, method, path, body);

test('programs: one created with points that expire', async () => {
  await signIn(page, server.base, server.rootToken);
  await page.getByRole('heading', { name: 'Programs' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('Expiring club');
  await page.getByLabel('Points expire after (days)').fill('30');
  await page.getByRole('button', { name: 'Create program' }).click();
  await page.getByLabel('The new program\'s admin token').waitFor();
  await page.getByRole('cell', { name: 'after 30 days' }).waitFor();
  const { items } = await api('GET', '/v1/programs');
  const program = items.find((p) => p.name === 'Expiring club');
  assert.deepEqual(program.pointsExpiry, { afterDays: 30 });
  ids.program = program.id;
  noProblems();
});

test('members: balance, pending and expiring points, and what is left of each limit', async () => {
  const p = `/v1/programs/${ids.program}`;
  const connector = await api('POST', `${p}/connectors`, {
    name: 'Articles', eventType: 'custom.basic', auth: { type: 'queryToken', token: 'articles-token' },
    mapping: '{"clientEventId": eventId, "profile": {"kind": "default", "value": email}, "payload": {"timestamp": ts}}',
  });
  ids.connector = connector.id;
  await api('POST', `${p}/rules`, { name: 'Readers', connectorId: connector.id, points: { fixed: 10 }, limits: [{ count: 2, per: 'day' }] });
  await api('POST', `${p}/rules`, { name: 'Slow points', connectorId: connector.id, points: { fixed: 5 }, pendingDays: 7, priority: 1 });
  const [result] = await ingest(server.base, connector.id, 'articles-token', { eventId: 'a-1', ts: new Date().toISOString(), email: 'ann@example.com' });
  assert.equal(result.status, 'accepted');
  ids.member = result.memberId;
  ids.event = result.eventId;

  await page.goto(`${server.base}/console#/p/${ids.program}/members/${ids.member}`);
  await page.getByRole('heading', { name: `Member ${ids.member}` }).waitFor();
  assert.equal(await page.getByTestId('balance').textContent(), '10');
  assert.equal(await page.getByTestId('pending').textContent(), '5');
  await page.getByTestId('expiring').getByText('10 points on').waitFor();
  const readers = page.getByTestId('allowance').getByRole('row').filter({ hasText: 'Readers' });
  assert.deepEqual(await readers.getByRole('cell').allTextContents().then((cells) => cells.slice(0, 4)), ['Readers', '2 awards per day', '1', '1']);
  await page.getByTestId('allowance').getByRole('row').filter({ hasText: 'Slow points' }).getByRole('cell', { name: 'no limit' }).waitFor();
  noProblems();
});

test('members: points adjusted by hand, once per idempotency key; the reason is shown as text', async () => {
  await page.getByLabel('Points', { exact: true }).fill('25');
  await page.getByLabel('Reason').fill(`goodwill ${HOSTILE.script} ${HOSTILE.image}`);
  await page.getByLabel('Idempotency key').fill('ticket-1');
  await page.getByRole('button', { name: 'Adjust' }).click();
  await page.getByText('Adjusted by 25 points: the balance is now 35.').waitFor();
  await page.getByTestId('balance').filter({ hasText: /^35$/ }).waitFor();
  await page.getByRole('cell', { name: `goodwill ${HOSTILE.script} ${HOSTILE.image}` }).waitFor();
  await page.getByRole('cell', { name: 'adjustment', exact: true }).waitFor();
  await assertNoInjection(page, assert);

  // The same key with other points: refused, with the API's detail.
  await page.getByLabel('Points', { exact: true }).fill('26');
  await page.getByLabel('Reason').fill('goodwill again');
  await page.getByLabel('Idempotency key').fill('ticket-1');
  await page.getByRole('button', { name: 'Adjust' }).click();
  await page.getByRole('alert').filter({ hasText: 'No adjustment was made' }).filter({ hasText: '409 idempotency_conflict' }).waitFor();
  // Zero points: the API's validation detail.
  await page.getByLabel('Points', { exact: true }).fill('0');
  await page.getByLabel('Idempotency key').fill('ticket-2');
  await page.getByRole('button', { name: 'Adjust' }).click();
  await page.getByRole('alert').filter({ hasText: '422 validation_failed' }).waitFor();
  const member = await api('GET', `/v1/programs/${ids.program}/members/${ids.member}`);
  assert.equal(member.balance, 35);
  noProblems();
});

test('events: an event\'s points reversed in part, then in full; then nothing is left to reverse', async () => {
  await page.goto(`${server.base}/console#/p/${ids.program}/events/${ids.event}`);
  await page.getByRole('heading', { name: /^Event / }).waitFor();
  await page.getByLabel('Points to take back').fill('3');
  await page.getByLabel('Reason').fill('partly cancelled');
  await page.getByRole('button', { name: 'Reverse points' }).click();
  await page.getByText(/^Took back 3 points: the member's balance is now 33\.$/).waitFor();
  await page.getByLabel('Reason').fill('cancelled');
  await page.getByRole('button', { name: 'Reverse points' }).click();
  // What was left of both awards: 7 of the 10, and the 5 pending.
  await page.getByText('Took back 12 points').waitFor();
  await page.getByLabel('Reason').fill('once more');
  await page.getByRole('button', { name: 'Reverse points' }).click();
  await page.getByRole('alert').filter({ hasText: 'Nothing was taken back' }).filter({ hasText: '409 nothing_to_reverse' }).waitFor();
  const member = await api('GET', `/v1/programs/${ids.program}/members/${ids.member}`);
  assert.equal(member.balance, 25);
  assert.equal(member.pending, 0);
  // The member's activity lists the reversals with their reasons.
  await page.goto(`${server.base}/console#/p/${ids.program}/members/${ids.member}`);
  // One reversal entry per award.
  await page.getByRole('cell', { name: 'partly cancelled' }).first().waitFor();
  assert.equal(await page.getByRole('cell', { name: 'partly cancelled' }).count(), 2);
  assert.ok(await page.getByRole('cell', { name: 'reversal', exact: true }).count() >= 2);
  noProblems();
});

test('members: the balance follows the live stream, without a reload', async () => {
  await page.goto(`${server.base}/console#/p/${ids.program}/members/${ids.member}`);
  await page.getByTestId('live').filter({ hasText: 'Live: changes appear as they happen.' }).waitFor();
  const before = Number(await page.getByTestId('balance').textContent());
  // Changes made elsewhere: an adjustment through the API, then an event from the sender.
  await api('POST', `/v1/programs/${ids.program}/members/${ids.member}/adjustments`, { points: 7, reason: `from the CRM ${HOSTILE.image}` });
  await page.getByTestId('balance').filter({ hasText: new RegExp(`^${before + 7}$`) }).waitFor();
  await page.getByRole('cell', { name: `from the CRM ${HOSTILE.image}` }).waitFor();
  await ingest(server.base, ids.connector, 'articles-token', { eventId: 'a-live', ts: new Date().toISOString(), email: 'ann@example.com' });
  await page.getByTestId('balance').filter({ hasText: new RegExp(`^${before + 17}$`) }).waitFor();
  await page.getByTestId('pending').filter({ hasText: /^5$/ }).waitFor();
  await assertNoInjection(page, assert);
  noProblems();
});

test('event log: items received while it is open are announced, and shown on demand', async () => {
  await page.goto(`${server.base}/console#/p/${ids.program}/events`);
  await page.getByRole('heading', { name: 'Event log' }).waitFor();
  await page.locator('[data-testid="arrivals"][data-stream="live"]').waitFor({ state: 'attached' });
  await ingest(server.base, ids.connector, 'articles-token', { eventId: 'a-arrival', ts: new Date().toISOString(), email: 'bob@example.com' });
  await page.getByTestId('arrivals').getByText('1 new item received.').waitFor();
  await page.getByTestId('arrivals').getByRole('button', { name: 'Show them' }).click();
  await page.getByRole('row').filter({ hasText: 'a-arrival' }).waitFor();
  noProblems();
});
