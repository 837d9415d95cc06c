// Replays in the console: what failed, grouped; a dry run through a draft mapping and its
// report; the same replay applied, and the points it awarded.

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
  const root = server.rootToken;
  const program = await adminApi(server.base, root, 'POST', '/v1/programs', { name: 'Replays' });
  ids.program = program.id;
  // The mapping reads profile.email, but the sender sends user.email: every item is ignored.
  const connector = await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/connectors`, {
    name: 'Signups', eventType: 'custom.basic', auth: { type: 'queryToken', token: 'signups-token' },
    mapping: '{"clientEventId": id, "profile": {"kind": "email", "value": profile.email}, "payload": {"timestamp": ts}}',
  });
  ids.connector = connector.id;
  await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/rules`, { name: 'Welcome', connectorId: connector.id, points: { fixed: 10 } });
  const now = new Date().toISOString();
  await ingest(server.base, connector.id, 'signups-token', [
    { id: 's-1', ts: now, user: { email: 'ann@example.com' } },
    { id: 's-2', ts: now, user: { email: 'bob@example.com' } },
    { id: 's-3', ts: HOSTILE.script, profile: { email: 'eve@example.com' }, note: HOSTILE.image },
  ]);
  await signIn(page, server.base, program.adminToken);
  await page.getByRole('heading', { name: 'Connectors' }).waitFor();
});

after(async () => {
  await closeConsole({ server, browser });
});

function noProblems() {
  assertNoProblems(browser, assert);
}

test('replays: what failed, grouped by code, hostile messages shown as text', async () => {
  await page.getByRole('link', { name: 'Replays' }).click();
  await page.getByRole('heading', { name: 'Replays', level: 1 }).waitFor();
  const ignored = page.getByRole('row').filter({ hasText: 'missing_identifier' });
  await ignored.getByRole('cell', { name: '2', exact: true }).waitFor();
  await page.getByRole('row').filter({ hasText: 'validation_failed' }).waitFor();
  await assertNoInjection(page, assert);
  noProblems();
});

test('replays: a dry run through a draft mapping reports what would change, and stores nothing', async () => {
  const mapping = page.getByLabel('Mapping (JSONata)');
  await mapping.fill((await mapping.inputValue()).replace('profile.email', 'user.email'));
  await page.getByRole('button', { name: 'Start replay' }).click();
  await page.getByRole('heading', { name: /^Replay / }).waitFor();
  await page.getByTestId('replay-state').filter({ hasText: 'Dry run: done' }).waitFor();
  await page.getByTestId('replay-points').filter({ hasText: 'Points: 0 before, 20 after.' }).waitFor();
  await page.getByRole('heading', { name: 'What would change' }).waitFor();
  // Nothing but the report and its actions: no stray text.
  assert.ok(!(await page.locator('main').innerText()).includes('null'));
  const accepted = page.getByRole('table', { name: 'Items by status' }).getByRole('row').filter({ hasText: 'accepted' });
  assert.deepEqual(await accepted.getByRole('cell').allTextContents(), ['accepted', '0', '2']);
  const { items } = await adminApi(server.base, server.rootToken, 'GET', `/v1/programs/${ids.program}/events?status=accepted`);
  assert.equal(items.length, 0);
  noProblems();
});

test('replays: the dry run applied awards the points once', async () => {
  await page.getByRole('button', { name: 'Apply these changes' }).click();
  await page.getByTestId('replay-state').filter({ hasText: 'Applied replay: done' }).waitFor();
  await page.getByRole('heading', { name: 'What changed' }).waitFor();
  const member = await adminApi(server.base, server.rootToken, 'GET', `/v1/programs/${ids.program}/members?kind=email&value=ann@example.com`);
  assert.equal(member.balance, 10);
  // The largest changes link to the members.
  await page.getByRole('link', { name: member.id }).click();
  await page.getByRole('heading', { name: `Member ${member.id}` }).waitFor();
  noProblems();
});

test('replays: an invalid draft mapping is refused with its position', async () => {
  await page.goto(`${server.base}/console#/p/${ids.program}/replays?connector=${ids.connector}`);
  await page.getByLabel('Mapping (JSONata)').fill('{ "a": ');
  await page.getByRole('button', { name: 'Start replay' }).click();
  await page.getByRole('alert').filter({ hasText: 'The replay did not start' }).filter({ hasText: /line 1, column \d+/ }).waitFor();
  noProblems();
});
