// The pictures of docs/console/: the main screens on a small, tidy program. Run only when
// CONSOLE_SCREENSHOTS is set (scripts/console-tests.sh passes it through), so that a normal
// run leaves the working tree as it was.

import { test, before, after } from 'node:test';
import {
  adminApi, ingest, screenshot, openConsole, closeConsole,
} from './support.js';

const enabled = Boolean(process.env.CONSOLE_SCREENSHOTS);
let server;
let browser;
let page;
const ids = {};

before(async () => {
  if (!enabled) return;
  ({ server, browser, page } = await openConsole());
  const root = server.rootToken;
  const program = await adminApi(server.base, root, 'POST', '/v1/programs', { name: 'Acme Readers', pointsExpiry: { afterDays: 365 } });
  ids.program = program.id;
  await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/connectors`, {
    name: 'Shop orders', eventType: 'ecommerce.purchase', auth: { type: 'hubSignature', secrets: ['a-shop-secret'] },
    mapping: '{"profile": {"kind": "default", "value": customer.email}, "payload": {"timestamp": created_at, "orderId": id, "amount": total, "currency": currency}}',
  });
  const connector = await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/connectors`, {
    name: 'Article read', eventType: 'custom.basic', auth: { type: 'queryToken', token: 'an-article-token' },
    mapping: '{\n  "clientEventId": eventId,\n  "profile": {"kind": "default", "value": profile.email},\n  "payload": {\n    "timestamp": timestamp,\n    "tags": [{"name": "theme", "value": article.theme}],\n    "counters": [{"name": "total", "value": totalArticlesRead}]\n  }\n}',
  });
  ids.connector = connector.id;
  const rule = await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/rules`, {
    name: 'Sport readers', connectorId: connector.id,
    conditions: { all: [{ tag: 'theme', op: 'eq', value: 'sport' }, { counter: 'total', op: 'gte', value: 5 }] },
    points: { fixed: 10 }, limits: [{ count: 1, per: 'day' }],
  });
  ids.rule = rule.id;
  await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/rules`, {
    name: 'Every article', connectorId: connector.id, points: { fixed: 1 }, priority: 10, pendingDays: 14,
  });
  const shop = await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/connectors`, { template: 'shopify.orders-create', name: 'Shopify orders' });
  ids.shop = shop.id;
  const now = Date.now();
  const events = ['sport', 'news', 'sport', 'culture'].map((theme, i) => ({
    eventId: `article-${i + 1}`, timestamp: new Date(now - (4 - i) * 60000).toISOString(),
    profile: { email: i % 2 ? 'bob@example.com' : 'ann@example.com' }, article: { theme }, totalArticlesRead: 4 + i,
  }));
  events.push({ eventId: 'article-5', timestamp: 'last tuesday', profile: { email: 'ann@example.com' }, article: { theme: 'sport' } });
  const results = await ingest(server.base, connector.id, 'an-article-token', events);
  ids.event = results[2].eventId;
  ids.member = results[2].memberId;
  await adminApi(server.base, root, 'POST', `/v1/programs/${program.id}/members/${ids.member}/adjustments`, { points: 20, reason: 'Welcome gift' });
});

after(async () => {
  await closeConsole({ server, browser });
});

test('screenshots of the main screens', { skip: !enabled && 'CONSOLE_SCREENSHOTS is not set' }, async () => {
  const base = `${server.base}/console`;
  await page.goto(base);
  await page.getByLabel('Admin token').fill(server.rootToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Programs' }).waitFor();
  await screenshot(page, 'programs');
  const p = `#/p/${ids.program}`;
  const shots = [
    ['connectors', `${p}/connectors`, 'Connectors'],
    ['connector', `${p}/connectors/${ids.connector}`, 'Article read'],
    ['rules', `${p}/rules`, 'Earning rules'],
    ['rule-editor', `${p}/rules/${ids.rule}`, 'Sport readers'],
    ['test-events', `${p}/testing?connector=${ids.connector}`, 'Test events'],
    ['event-log', `${p}/events`, 'Event log'],
    ['event', `${p}/events/${ids.event}`, /^Event /],
  ];
  for (const [name, hash, heading] of shots) {
    await page.goto(`${base}${hash}`);
    await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
    await screenshot(page, name);
  }
  await page.goto(`${base}${p}/connectors/${ids.shop}`);
  await page.getByLabel('Secret to sign with').fill('the-secret-shopify-shows');
  await page.getByTestId('curl').filter({ hasText: 'X-Shopify-Hmac-Sha256' }).waitFor();
  await page.getByRole('heading', { name: 'Endpoint' }).evaluate((heading) => heading.scrollIntoView({ block: 'start' }));
  await page.getByLabel('Secret to sign with').blur();
  await screenshot(page, 'connector-shopify');
  await page.goto(`${base}${p}/connectors/new`);
  await page.getByLabel('Start from a template').selectOption('shopify.orders-create');
  await page.getByLabel('Start from a template').blur();
  await page.evaluate(() => window.scrollTo(0, 0));
  await screenshot(page, 'connector-template');
  await page.goto(`${base}${p}/members/${ids.member}`);
  await page.getByTestId('allowance').getByRole('table').waitFor();
  await screenshot(page, 'member', { fullPage: true });
  await page.goto(`${base}${p}/replays?connector=${ids.connector}`);
  await page.getByRole('heading', { name: 'What failed' }).waitFor();
  await screenshot(page, 'replays');
  const replay = await adminApi(server.base, server.rootToken, 'POST', `/v1/programs/${ids.program}/replays`, {
    connectorId: ids.connector, apply: false,
    mapping: '{"clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": $now(), "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead ? totalArticlesRead : 0}]}}',
  });
  await page.goto(`${base}${p}/replays/${replay.id}`);
  await page.getByTestId('replay-state').filter({ hasText: 'done' }).waitFor();
  await screenshot(page, 'replay', { fullPage: true });
  await page.goto(`${base}${p}/playground?connector=${ids.connector}`);
  await page.getByTestId('simulation').getByRole('cell', { name: 'Sport readers' }).waitFor();
  await screenshot(page, 'playground', { fullPage: true });
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(`${base}${p}/events`);
  await page.getByRole('heading', { name: 'Event log', level: 1 }).waitFor();
  await screenshot(page, 'event-log-390', { fullPage: true });
});
