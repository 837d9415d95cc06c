// Accessibility and weight: axe-core finds no serious or critical violation on any screen,
// the console works from the keyboard alone, and its files stay under 300 KB compressed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import {
  adminApi, ingest, axeViolations, HOSTILE, assertNoHorizontalScroll, openConsole, closeConsole,
} from './support.js';

let server;
let browser;
let page;
const ids = {};

before(async () => {
  ({ server, browser, page } = await openConsole());
  // A program with one of everything, some of it hostile, so that every screen has content.
  const root = server.rootToken;
  const program = await adminApi(server.base, root, 'POST', '/v1/programs', { name: `Readers ${HOSTILE.script}` });
  ids.program = program.id;
  const connector = await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/connectors`, {
    name: 'Article Read', eventType: 'custom.basic', auth: { type: 'queryToken', token: 'a-connector-token' },
    mapping: '{"clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": total}]}}',
  });
  ids.connector = connector.id;
  const stripe = await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/connectors`, {
    template: 'stripe.checkout-session-completed', name: `Stripe ${HOSTILE.image}`,
  });
  ids.stripe = stripe.id;
  const rule = await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/rules`, {
    name: 'Sport readers', connectorId: connector.id, conditions: { all: [{ tag: 'theme', op: 'eq', value: 'sport' }] }, points: { fixed: 10 }, limits: [{ count: 1, per: 'day' }],
  });
  ids.rule = rule.id;
  const results = await ingest(server.base, connector.id, 'a-connector-token', [
    { eventId: 'e-1', timestamp: new Date().toISOString(), profile: { email: 'ann@example.com' }, article: { theme: 'sport' }, total: 3 },
    { eventId: 'e-2', timestamp: 'yesterday', profile: { email: 'ann@example.com' }, article: { theme: HOSTILE.image }, total: 1 },
  ]);
  ids.event = results[0].eventId;
  ids.member = results[0].memberId;
  const replay = await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/replays`, { connectorId: connector.id, apply: false });
  ids.replay = replay.id;
});

after(async () => {
  await closeConsole({ server, browser });
});

const SCREENS = () => [
  ['programs', '#/programs', 'Programs'],
  ['connectors', `#/p/${ids.program}/connectors`, 'Connectors'],
  ['new connector', `#/p/${ids.program}/connectors/new`, 'New connector'],
  ['connector', `#/p/${ids.program}/connectors/${ids.connector}`, 'Article Read'],
  ['sender connector', `#/p/${ids.program}/connectors/${ids.stripe}`, /^Stripe /],
  ['playground', `#/p/${ids.program}/playground?connector=${ids.connector}`, 'Mapping playground'],
  ['rules', `#/p/${ids.program}/rules`, 'Earning rules'],
  ['rule', `#/p/${ids.program}/rules/${ids.rule}`, 'Sport readers'],
  ['new rule', `#/p/${ids.program}/rules/new?connector=${ids.connector}`, 'New rule'],
  ['test events', `#/p/${ids.program}/testing?connector=${ids.connector}`, 'Test events'],
  ['event log', `#/p/${ids.program}/events`, 'Event log'],
  ['event', `#/p/${ids.program}/events/${ids.event}`, /^Event /],
  ['members', `#/p/${ids.program}/members`, 'Members'],
  ['member', `#/p/${ids.program}/members/${ids.member}`, /^Member /],
  ['replays', `#/p/${ids.program}/replays?connector=${ids.connector}`, 'Replays'],
  ['replay', `#/p/${ids.program}/replays/${ids.replay}`, /^Replay /],
];

test('the sign-in screen works from the keyboard alone and has no serious axe violation', async () => {
  await page.goto(`${server.base}/console`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.deepEqual(await axeViolations(page), []);
  // The token field has the focus on arrival; Enter signs in.
  await page.keyboard.type(server.rootToken);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Programs' }).waitFor();
  // From the top of the page: the skip link, then the screens' links.
  await page.reload();
  await page.getByRole('heading', { name: 'Programs' }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
  // Into the program by keyboard: the first program's link, then Enter.
  await page.getByRole('link', { name: /^Readers/ }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Connectors' }).waitFor();
  assert.deepEqual(browser.problems, []);
});

for (const width of [1280, 390]) {
  test(`every screen at ${width} px: no serious or critical axe violation, no sideways scrolling`, async () => {
    await page.setViewportSize({ width, height: 800 });
    for (const [name, hash, heading] of SCREENS()) {
      await page.goto(`${server.base}/console${hash}`);
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      // Let the playground's debounced simulation land, so its result is scanned too.
      if (name === 'playground') await page.getByTestId('simulation').getByRole('heading', { level: 3 }).first().waitFor();
      if (name === 'member') await page.getByTestId('allowance').getByRole('table').waitFor();
      if (name === 'replay') await page.getByTestId('replay-state').filter({ hasText: 'done' }).waitFor();
      if (name === 'new connector') {
        // With a template chosen, its explanation shown.
        await page.getByLabel('Start from a template').selectOption('shopify.orders-create');
        await page.getByText('Shopify order created: an event of type ecommerce.purchase').waitFor();
      }
      assert.deepEqual(await axeViolations(page), [], name);
      await assertNoHorizontalScroll(page, { ok: (value, message) => assert.ok(value, `${name}: ${message}`) });
    }
    assert.deepEqual(browser.problems, []);
  });
}

test('the console\'s files weigh under 300 KB compressed', async () => {
  const paths = new Set(['/console']);
  const seen = new Set();
  let compressed = 0;
  // Follows the page's stylesheet, icon and scripts, and every module's imports.
  while (paths.size) {
    const [path] = paths;
    paths.delete(path);
    seen.add(path);
    const response = await fetch(`${server.base}${path}`);
    assert.equal(response.status, 200, path);
    const text = await response.text();
    compressed += gzipSync(text, { level: 9 }).length;
    const base = new URL(path, server.base);
    for (const match of text.matchAll(/(?:href|src)="(\/console\/[^"]+)"|from '(\.{1,2}\/[^']+)'/g)) {
      const next = new URL(match[1] ?? match[2], base).pathname;
      if (!seen.has(next)) paths.add(next);
    }
  }
  assert.ok(seen.size >= 10, `only ${[...seen]}`);
  assert.ok(compressed < 300 * 1024, `${compressed} bytes compressed`);
  console.log(`console: ${seen.size} files, ${compressed} bytes gzipped`);
});
