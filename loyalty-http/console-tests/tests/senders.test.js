// Connectors from templates, and every authentication scheme: the console builds a request
// for each, signed in the browser with the secret the admin pastes, and the real server
// accepts it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  adminApi, HOSTILE, assertNoInjection, openConsole, closeConsole, signIn, assertNoProblems,
} from './support.js';

let server;
let browser;
let page;
let programId;

before(async () => {
  ({ server, browser, page } = await openConsole());
  const program = await adminApi(server.base, server.rootToken, 'POST', '/v1/programs', { name: 'Senders' });
  programId = program.id;
  await signIn(page, server.base, program.adminToken);
  await page.getByRole('heading', { name: 'Connectors' }).waitFor();
});

after(async () => {
  await closeConsole({ server, browser });
});

function noProblems() {
  assertNoProblems(browser, assert);
}

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

/** Waits until the shown request is signed over `body` (the debounce has run). */
async function requestFor(body, marker) {
  await page.getByTestId('curl').filter({ hasText: marker }).waitFor();
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const request = await shownRequest().catch(() => null);
    if (request?.body === body) return request;
    await page.waitForTimeout(100);
  }
  throw new Error(`the request was not rebuilt for ${body}: ${await page.getByTestId('curl').textContent()}`);
}

async function post(request) {
  const response = await fetch(request.url, { method: 'POST', headers: request.headers, body: request.body });
  const text = await response.text();
  return { status: response.status, text, answer: JSON.parse(text) };
}

test('connectors: one created from a template, its generated secret signing a request the server accepts', async () => {
  const { items } = await adminApi(server.base, server.rootToken, 'GET', '/v1/templates');
  const template = items.find((t) => t.id === 'shopify.orders-create');
  await page.getByRole('link', { name: 'New connector' }).click();
  await page.getByLabel('Start from a template').selectOption(template.id);
  assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), template.name);
  assert.equal(await page.getByLabel('Scheme').inputValue(), 'shopify');
  assert.equal(await page.getByLabel('Event type').inputValue(), template.eventType);
  assert.equal(await page.getByLabel('Mapping (JSONata)').inputValue(), template.mapping);
  await page.getByLabel('Name', { exact: true }).fill('My shop');
  await page.getByRole('button', { name: 'Create connector' }).click();
  await page.getByText('Connector created.').waitFor();
  const secret = await page.getByLabel('Generated token or secrets').inputValue();
  const connectorId = page.url().split('/connectors/')[1];
  const connector = await adminApi(server.base, server.rootToken, 'GET', `/v1/programs/${programId}/connectors/${connectorId}`);
  assert.equal(connector.name, 'My shop');
  assert.equal(connector.mapping, template.mapping);
  assert.equal(connector.auth.type, 'shopify');
  // The request starts from the template's sample, signed with the secret just generated.
  const body = await page.getByLabel('Request body').inputValue();
  assert.deepEqual(JSON.parse(body), template.samplePayload);
  const request = await requestFor(body, 'X-Shopify-Hmac-Sha256');
  assert.equal(request.headers['X-Shopify-Hmac-Sha256'], createHmac('sha256', secret).update(body).digest('base64'));
  // Authenticated and mapped (the template's sample is dated years ago, hence too old).
  const { status, text, answer } = await post(request);
  assert.equal(status, 200, text);
  assert.ok(answer.results[0].status === 'accepted' || answer.results[0].error?.code === 'event_too_old', text);
  noProblems();
});

const MAPPING = '{"profile": {"kind": "email", "value": email}, "payload": {"timestamp": ts}}';

/** Every scheme, a variant or two of hubSignature, each with the header it must show. */
const SCHEMES = [
  ['queryToken', { token: 'a-query-token' }, 'token=a-query-token'],
  ['headerToken', { header: 'X-Api-Key', token: 'a-header-token' }, 'X-Api-Key: a-header-token'],
  ['hubSignature', { secrets: ['hub secret'] }, 'X-Hub-Signature-256: sha256='],
  ['hubSignature', { header: 'X-Sig', algorithm: 'sha512', encoding: 'base64', prefix: '', deliveryIdHeader: 'X-Delivery', secrets: ['hub secret'] }, 'X-Delivery:'],
  ['hubSignature', { header: 'X-Sig1', algorithm: 'sha1', secrets: ['hub secret'] }, 'X-Sig1: sha1='],
  ['standardWebhooks', { secrets: [`whsec_${Buffer.from('a standard webhooks key 32 bytes').toString('base64')}`] }, 'webhook-signature: v1,'],
  ['github', { secrets: ['github secret'] }, 'X-GitHub-Delivery:'],
  ['shopify', { secrets: ['shopify secret'] }, 'X-Shopify-Hmac-Sha256:'],
  ['stripe', { secrets: ['whsec_stripe secret'] }, 'Stripe-Signature: t='],
  ['slack', { secrets: ['slack secret'] }, 'X-Slack-Signature: v0='],
  ['hubspot', { secrets: ['hubspot secret'] }, 'X-HubSpot-Signature-v3:'],
  ['typeform', { secrets: ['typeform secret'] }, 'Typeform-Signature: sha256='],
  ['woocommerce', { secrets: ['woo secret'] }, 'X-WC-Webhook-Signature:'],
  ['segment', { secrets: ['segment secret'] }, 'X-Signature:'],
  ['zendesk', { secrets: ['zendesk secret'] }, 'X-Zendesk-Webhook-Signature-Timestamp:'],
];

test('connectors: every scheme gets a request, signed in the browser, that the server accepts', async () => {
  for (const [index, [type, auth, marker]] of SCHEMES.entries()) {
    const spec = {
      name: `${type} ${index}`, eventType: 'custom.basic', auth: { type, ...auth }, mapping: MAPPING,
      // HubSpot signs the URL it posts to: here, the test server's.
      publicBaseUrl: type === 'hubspot' ? server.base : undefined,
    };
    const created = await adminApi(server.base, server.rootToken, 'POST', `/v1/programs/${programId}/connectors`, spec);
    await page.goto(`${server.base}/console#/p/${programId}/connectors/${created.id}`);
    await page.getByRole('heading', { name: spec.name, level: 1 }).waitFor();
    const credential = auth.token ?? auth.secrets[0];
    await page.getByLabel(auth.token ? 'Token to send' : 'Secret to sign with').fill(credential);
    const body = JSON.stringify({ id: `evt_${index}`, event_id: `e-${index}`, messageId: `m-${index}`, email: `${type}-${index}@example.com`, ts: new Date().toISOString(), note: "it's" });
    await page.getByLabel('Request body').fill(body);
    const request = await requestFor(body, marker);
    const { status, text, answer } = await post(request);
    assert.equal(status, 200, `${type} ${index}: ${text}\n${JSON.stringify(request.headers)}`);
    assert.equal(answer.results[0].status, 'accepted', `${type} ${index}: ${text}`);
    // A wrong secret signs a request the server refuses.
    if (auth.secrets) {
      await page.getByLabel('Secret to sign with').fill(type === 'standardWebhooks' ? `whsec_${Buffer.from('another key').toString('base64')}` : 'not the secret');
      await page.getByLabel('Request body').fill(`${body} `);
      const wrong = await requestFor(`${body} `, marker);
      assert.equal((await post(wrong)).status, 401, `${type} ${index} with a wrong secret`);
    }
  }
  noProblems();
});

test('connectors: the form sets every field of a configurable HMAC scheme and of a sender\'s', async () => {
  await page.goto(`${server.base}/console#/p/${programId}/connectors/new`);
  await page.getByLabel('Name', { exact: true }).fill('Configured HMAC');
  await page.getByLabel('Scheme').selectOption('hubSignature');
  await page.getByLabel('HMAC algorithm').selectOption('sha512');
  // The prefix followed the algorithm.
  assert.equal(await page.getByLabel('Signature prefix').inputValue(), 'sha512=');
  await page.getByLabel('Signature encoding').selectOption('base64');
  await page.getByLabel('Signature prefix').fill('');
  await page.getByLabel('Delivery id header').fill('X-Delivery-Id');
  await page.getByLabel('Secrets, one per line').fill('first secret\nsecond secret');
  await page.getByRole('button', { name: 'Create connector' }).click();
  await page.getByText('Connector created.').waitFor();
  let id = page.url().split('/connectors/')[1];
  let connector = await adminApi(server.base, server.rootToken, 'GET', `/v1/programs/${programId}/connectors/${id}`);
  assert.deepEqual(connector.auth, { type: 'hubSignature', header: 'X-Hub-Signature-256', algorithm: 'sha512', encoding: 'base64', prefix: '', deliveryIdHeader: 'X-Delivery-Id', secretCount: 2 });
  // Saving again without secrets keeps them, and every setting.
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Changes saved.').waitFor();
  connector = await adminApi(server.base, server.rootToken, 'GET', `/v1/programs/${programId}/connectors/${id}`);
  assert.equal(connector.auth.secretCount, 2);
  assert.equal(connector.auth.prefix, '');

  await page.goto(`${server.base}/console#/p/${programId}/connectors/new`);
  await page.getByLabel('Name', { exact: true }).fill('HubSpot contacts');
  await page.getByLabel('Scheme').selectOption('hubspot');
  await page.getByLabel('Timestamp tolerance (seconds)').fill('120');
  await page.getByLabel('Public base URL').fill('https://loyalty.example');
  await page.getByRole('button', { name: 'Create connector' }).click();
  await page.getByText('Connector created.').waitFor();
  id = page.url().split('/connectors/')[1];
  connector = await adminApi(server.base, server.rootToken, 'GET', `/v1/programs/${programId}/connectors/${id}`);
  assert.deepEqual(connector.auth, { type: 'hubspot', toleranceSeconds: 120, secretCount: 1 });
  assert.equal(connector.publicBaseUrl, 'https://loyalty.example');
  // The request is signed for the URL HubSpot posts to.
  await page.getByTestId('curl').filter({ hasText: 'https://loyalty.example/v1/incoming/' }).waitFor();
  noProblems();
});

test('connectors: a template\'s fields changed before creation replace the template\'s', async () => {
  await page.goto(`${server.base}/console#/p/${programId}/connectors/new`);
  await page.getByLabel('Start from a template').selectOption('stripe.charge-refunded');
  await page.getByLabel('Name', { exact: true }).fill(`Refunds ${HOSTILE.script}`);
  await page.getByLabel('Secrets, one per line').fill('whsec_my-stripe-secret');
  await page.getByRole('button', { name: 'Create connector' }).click();
  await page.getByText('Connector created.').waitFor();
  await page.getByRole('heading', { name: `Refunds ${HOSTILE.script}`, level: 1 }).waitFor();
  const id = page.url().split('/connectors/')[1];
  const connector = await adminApi(server.base, server.rootToken, 'GET', `/v1/programs/${programId}/connectors/${id}`);
  assert.equal(connector.eventType, 'ecommerce.refund');
  assert.equal(connector.auth.type, 'stripe');
  assert.equal(connector.auth.secretCount, 1);
  // The secret was the admin's, so none is shown as generated.
  assert.equal(await page.getByLabel('Generated token or secrets').count(), 0);
  await assertNoInjection(page, assert);
  noProblems();
});

test('test events: a signed test event sent from the browser with a pasted secret, and a wrong secret\'s 401 shown with its detail', async () => {
  const created = await adminApi(server.base, server.rootToken, 'POST', `/v1/programs/${programId}/connectors`, {
    name: 'GitHub pushes', eventType: 'custom.basic', auth: { type: 'github', secrets: ['a github secret'] }, mapping: MAPPING,
  });
  await page.goto(`${server.base}/console#/p/${programId}/testing?connector=${created.id}`);
  await page.getByLabel('Payload (JSON)').fill(JSON.stringify({ email: 'dev@example.com', ts: new Date().toISOString() }));
  await page.getByLabel('Connector secret').fill('a github secret');
  await page.getByRole('button', { name: 'Send as a test event' }).click();
  const result = page.getByTestId('test-result');
  await result.getByText('Sent: 1 accepted, 0 duplicate, 0 ignored, 0 rejected.').waitFor();
  await page.getByLabel('Connector secret').fill('not the secret');
  await page.getByRole('button', { name: 'Send as a test event' }).click();
  await result.getByRole('alert').filter({ hasText: 'The endpoint answered 401' }).waitFor();
  const { items } = await adminApi(server.base, server.rootToken, 'GET', `/v1/programs/${programId}/events?connectorId=${created.id}`);
  assert.equal(items.length, 1);
  assert.equal(items[0].test, true);
  noProblems();
});
