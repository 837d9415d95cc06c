// Connectors: the list; a form to create one (blank or from a sender's template) or edit one
// (name, event type, every auth scheme, mapping); its endpoint with a copyable request signed
// for its scheme; delete.

import { api, programPath } from '../api.js';
import { h, field, checkbox, select, href, notice, problemNotice, table, copyButton, debounce, codeBlock } from '../dom.js';
import { SCHEMES, scheme as schemeOf, buildRequest, credentialKind, curlCommand } from '../signature.js';

const EVENT_TYPES = ['custom.basic', 'ecommerce.purchase', 'ecommerce.refund'].map((t) => [t, t]);

/** What a new connector starts with, per event type: a mapping and a payload it maps. */
export const STARTERS = {
  'custom.basic': {
    mapping: '{\n  "clientEventId": eventId,\n  "profile": {"kind": "default", "value": profile.email},\n  "payload": {\n    "timestamp": timestamp,\n    "tags": [{"name": "theme", "value": article.theme}],\n    "counters": [{"name": "total", "value": totalArticlesRead}]\n  }\n}',
    payload: () => ({ eventId: `a-${Date.now()}`, timestamp: new Date().toISOString(), profile: { email: 'ann@example.com' }, article: { theme: 'sport' }, totalArticlesRead: 5 }),
  },
  'ecommerce.purchase': {
    mapping: '{\n  "profile": {"kind": "default", "value": customer.email},\n  "payload": {\n    "timestamp": created_at,\n    "orderId": id,\n    "amount": total,\n    "currency": currency,\n    "items": line_items.{"sku": sku, "name": title, "quantity": quantity, "unitPrice": price}\n  }\n}',
    payload: () => ({ id: `o-${Date.now()}`, created_at: new Date().toISOString(), customer: { email: 'ann@example.com' }, total: 42.5, currency: 'EUR', line_items: [{ sku: 'tea-1', title: 'Green tea', quantity: 2, price: 21.25 }] }),
  },
  'ecommerce.refund': {
    mapping: '{\n  "clientEventId": id,\n  "payload": {\n    "orderId": order_id,\n    "amount": amount,\n    "currency": currency,\n    "reason": reason\n  }\n}',
    payload: () => ({ id: `r-${Date.now()}`, order_id: 'o-1', amount: 10, currency: 'EUR', reason: 'damaged' }),
  },
};

/** The program-independent templates (`GET /v1/templates`), fetched once per page load. */
let templateList;
export async function templates() {
  templateList ??= api('GET', ['v1', 'templates']).then((answer) => answer.items).catch((error) => {
    templateList = undefined;
    throw error;
  });
  return templateList;
}

/**
 * A payload to start from for a connector: its template's sample when its mapping is still a
 * template's, else the event type's starter.
 */
export async function starterPayload(connector) {
  const list = await templates().catch(() => []);
  const template = list.find((t) => t.mapping === connector.mapping);
  if (template) return structuredClone(template.samplePayload);
  return (STARTERS[connector.eventType] ?? STARTERS['custom.basic']).payload();
}

export function schemeLabel(type) {
  return schemeOf(type)?.label ?? type;
}

export async function render(ctx) {
  const [target] = ctx.rest;
  if (target === 'new') return editor(ctx, null, await templates());
  if (target) return editor(ctx, await api('GET', programPath(ctx.programId, 'connectors', target)));
  return list(ctx);
}

async function list(ctx) {
  const { items } = await api('GET', programPath(ctx.programId, 'connectors'));
  const rows = items.map((c) => h('tr', {},
    h('td', {}, h('a', { href: href(['p', ctx.programId, 'connectors', c.id]) }, c.name)),
    h('td', {}, c.eventType),
    h('td', {}, schemeLabel(c.auth?.type)),
    h('td', {}, c.testMode ? 'test' : 'live'),
    h('td', { class: 'mono' }, new URL(c.endpoint, location.origin).toString())));
  return h('section', {},
    h('h1', {}, 'Connectors'),
    h('p', {}, 'A connector is an endpoint for one sender: how it authenticates and how its JSON maps to a canonical event.'),
    h('div', { class: 'actions' }, h('a', { class: 'button', href: href(['p', ctx.programId, 'connectors', 'new']) }, 'New connector')),
    items.length
      ? table(['Name', 'Event type', 'Authentication', 'Mode', 'Endpoint'], rows)
      : h('p', {}, 'No connector yet.'));
}

/** The auth fields of a scheme, rebuilt when the scheme changes. */
function authFields(type, current, creating, connector) {
  const nodes = [];
  const inputs = {};
  const info = schemeOf(type);
  const keepHint = creating ? 'Leave empty to have one generated (shown once).' : 'Leave empty to keep the current one.';
  if (type === 'queryToken') {
    inputs.param = h('input', { type: 'text', value: current?.param ?? 'token', autocomplete: 'off' });
    nodes.push(field('Query parameter', inputs.param));
  }
  if (type === 'headerToken' || type === 'hubSignature') {
    const fallback = type === 'headerToken' ? 'X-Authorization' : 'X-Hub-Signature-256';
    inputs.header = h('input', { type: 'text', value: current?.header ?? fallback, autocomplete: 'off' });
    nodes.push(field('Header', inputs.header));
  }
  if (type === 'hubSignature') {
    inputs.algorithm = select([['sha256', 'SHA-256'], ['sha1', 'SHA-1'], ['sha512', 'SHA-512']], current?.algorithm ?? 'sha256');
    inputs.encoding = select([['hex', 'hex (lowercase)'], ['base64', 'base64']], current?.encoding ?? 'hex');
    inputs.prefix = h('input', { type: 'text', value: current?.prefix ?? 'sha256=', autocomplete: 'off', spellcheck: 'false' });
    inputs.deliveryIdHeader = h('input', { type: 'text', value: current?.deliveryIdHeader ?? '', autocomplete: 'off' });
    // The prefix follows the algorithm while it is the algorithm's default.
    let algorithm = inputs.algorithm.value;
    inputs.algorithm.addEventListener('change', () => {
      if (inputs.prefix.value === `${algorithm}=`) inputs.prefix.value = `${inputs.algorithm.value}=`;
      algorithm = inputs.algorithm.value;
    });
    nodes.push(h('div', { class: 'row' },
      field('HMAC algorithm', inputs.algorithm),
      field('Signature encoding', inputs.encoding),
      field('Signature prefix', inputs.prefix, 'Written before the signature; empty for none.'),
      field('Delivery id header', inputs.deliveryIdHeader, 'Optional: its value becomes the default client event id.')));
  }
  if (info?.credential === 'token') {
    inputs.token = h('input', { type: 'password', autocomplete: 'new-password' });
    nodes.push(field('Token', inputs.token, keepHint));
  }
  if (info?.credential === 'secret') {
    inputs.secrets = h('textarea', { rows: 2, autocomplete: 'off', spellcheck: 'false', class: 'mono' });
    const count = current?.secretCount !== undefined ? ` Current: ${current.secretCount} secret(s).` : '';
    const format = type === 'standardWebhooks' ? ' Each is whsec_ and base64.' : '';
    nodes.push(field('Secrets, one per line', inputs.secrets, `Any of them is accepted, so secrets can rotate.${format} ${keepHint}${count}`));
  }
  if (info?.timestamped) {
    inputs.tolerance = h('input', { type: 'number', min: 1, max: 86400, value: current?.toleranceSeconds ?? 300 });
    nodes.push(field('Timestamp tolerance (seconds)', inputs.tolerance));
  }
  if (type === 'hubspot') {
    inputs.publicBaseUrl = h('input', { type: 'url', value: connector?.publicBaseUrl ?? '', placeholder: location.origin, autocomplete: 'off', spellcheck: 'false' });
    nodes.push(field('Public base URL', inputs.publicBaseUrl, 'HubSpot signs the URL it posts to: the scheme, host and any prefix before /v1/incoming. Empty: the server\'s --public-base-url.'));
  }
  const read = () => {
    const auth = { type };
    if (inputs.param) auth.param = inputs.param.value.trim() || undefined;
    if (inputs.header) auth.header = inputs.header.value.trim() || undefined;
    if (inputs.algorithm) {
      auth.algorithm = inputs.algorithm.value;
      auth.encoding = inputs.encoding.value;
      auth.prefix = inputs.prefix.value;
      auth.deliveryIdHeader = inputs.deliveryIdHeader.value.trim() || undefined;
    }
    if (inputs.token?.value) auth.token = inputs.token.value;
    const secrets = inputs.secrets?.value.split('\n').map((s) => s.trim()).filter(Boolean) ?? [];
    if (secrets.length) auth.secrets = secrets;
    if (inputs.tolerance) auth.toleranceSeconds = Number(inputs.tolerance.value) || undefined;
    return auth;
  };
  // Top-level, but only HubSpot's signature needs it: other schemes keep the connector's.
  const publicBaseUrl = () => (inputs.publicBaseUrl ? inputs.publicBaseUrl.value.trim() || null : connector?.publicBaseUrl);
  return { nodes, read, publicBaseUrl };
}

async function editor(ctx, connector, templateItems = []) {
  const creating = !connector;
  const status = h('div', { 'aria-live': 'polite' });
  const name = h('input', { type: 'text', required: true, maxlength: 200, value: connector?.name ?? '', autocomplete: 'off' });
  const eventType = select(EVENT_TYPES, connector?.eventType ?? 'custom.basic');
  const known = SCHEMES.map((s) => [s.type, s.label]);
  const schemes = !connector || schemeOf(connector.auth?.type) ? known : [...known, [connector.auth.type, connector.auth.type]];
  const scheme = select(schemes, connector?.auth?.type ?? 'queryToken');
  const mapping = h('textarea', { class: 'code', spellcheck: 'false', value: connector?.mapping ?? STARTERS['custom.basic'].mapping });
  const testMode = checkbox('Test mode: everything it receives is test data', connector?.testMode ?? false);
  const maxAge = h('input', { type: 'number', min: 1, value: connector?.maxEventAgeDays ?? 30 });
  const authBox = h('fieldset', {}, h('legend', {}, 'Authentication'));
  let auth;
  const drawAuth = () => {
    const current = connector?.auth?.type === scheme.value ? connector.auth : null;
    auth = authFields(scheme.value, current, creating || !current, connector);
    authBox.replaceChildren(h('legend', {}, 'Authentication'), field('Scheme', scheme), ...auth.nodes);
  };
  scheme.addEventListener('change', () => { drawAuth(); scheme.focus(); });
  drawAuth();

  let template = null;
  let templateBox = null;
  if (creating) {
    // A new connector's starter mapping follows its event type until it is edited.
    let mappingEdited = false;
    let nameEdited = false;
    mapping.addEventListener('input', () => { mappingEdited = true; });
    name.addEventListener('input', () => { nameEdited = true; });
    eventType.addEventListener('change', () => { if (!mappingEdited && !template) mapping.value = STARTERS[eventType.value].mapping; });
    const pick = select([['', 'Blank connector'], ...templateItems.map((t) => [t.id, t.name])], '');
    const about = h('p', { class: 'hint', 'aria-live': 'polite' });
    pick.addEventListener('change', () => {
      template = templateItems.find((t) => t.id === pick.value) ?? null;
      if (template) {
        if (!nameEdited) name.value = template.name;
        eventType.value = template.eventType;
        scheme.value = template.auth.type;
        mapping.value = template.mapping;
        mappingEdited = false;
        about.textContent = `${template.name}: an event of type ${template.eventType}, authenticated by the ${schemeLabel(template.auth.type)} scheme. A field changed below replaces the template's.`;
      } else {
        mapping.value = STARTERS[eventType.value].mapping;
        about.textContent = '';
      }
      drawAuth();
    });
    templateBox = h('div', {}, field('Start from a template', pick, 'A sender\'s event ready to use: its authentication, event type and mapping.'), about);
  }

  const form = h('form', { 'aria-label': creating ? 'New connector' : 'Edit connector' },
    templateBox,
    h('div', { class: 'row' }, field('Name', name), field('Event type', eventType)),
    authBox,
    field('Mapping (JSONata)', mapping, 'Turns the sender\'s JSON into a canonical event. Try it on real payloads in the playground.'),
    h('div', { class: 'row' }, field('Maximum event age (days)', maxAge, 'Older events are rejected; raise it for a backfill.')),
    testMode.node,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, creating ? 'Create connector' : 'Save changes')),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {
      name: name.value,
      eventType: eventType.value,
      auth: auth.read(),
      mapping: mapping.value,
      testMode: testMode.input.checked,
      maxEventAgeDays: Number(maxAge.value) || undefined,
      publicBaseUrl: auth.publicBaseUrl() ?? undefined,
    };
    if (template) {
      // From the template: only what differs from it is sent (a field given replaces the
      // template's whole).
      body.template = template.id;
      if (body.eventType === template.eventType) delete body.eventType;
      if (body.mapping === template.mapping) delete body.mapping;
      if (JSON.stringify(body.auth) === JSON.stringify(template.auth)) delete body.auth;
    }
    try {
      const saved = creating
        ? await api('POST', programPath(ctx.programId, 'connectors'), { body })
        : await api('PUT', programPath(ctx.programId, 'connectors', connector.id), { body });
      const generated = saved.auth?.token ?? saved.auth?.secrets?.join('\n');
      const page = await editor(ctx, saved);
      if (ctx.stale()) return;
      if (generated) page.prepend(shownOnce(generated));
      const done = notice('success', h('p', {}, creating ? 'Connector created.' : 'Changes saved.'));
      page.prepend(done);
      if (creating) history.replaceState(null, '', href(['p', ctx.programId, 'connectors', saved.id]));
      form.closest('section').replaceWith(page);
      // The form the focus was in is gone: keyboard users continue from the outcome.
      done.tabIndex = -1;
      done.focus();
      if (generated) page.dispatchEvent(new CustomEvent('credential', { detail: saved.auth.token ?? saved.auth.secrets[0] }));
    } catch (error) {
      status.replaceChildren(problemNotice(error, creating ? 'The connector was not created' : 'The changes were not saved'));
    }
  });

  const section = h('section', {},
    h('p', {}, h('a', { href: href(['p', ctx.programId, 'connectors']) }, '← All connectors')),
    h('h1', {}, creating ? 'New connector' : connector.name),
    form);
  if (!creating) {
    section.append(
      await requestPanel(ctx, connector, section),
      h('h2', {}, 'Next steps'),
      h('ul', {},
        h('li', {}, h('a', { href: href(['p', ctx.programId, 'playground'], { connector: connector.id }) }, 'Try the mapping in the playground')),
        h('li', {}, h('a', { href: href(['p', ctx.programId, 'rules'], { connector: connector.id }) }, 'Earning rules of this connector')),
        h('li', {}, h('a', { href: href(['p', ctx.programId, 'testing'], { connector: connector.id }) }, 'Send test events, purge test data')),
        h('li', {}, h('a', { href: href(['p', ctx.programId, 'events'], { connector: connector.id }) }, 'Its event log'))),
      deletePanel(ctx, connector));
  }
  return section;
}

function shownOnce(generated) {
  const box = h('textarea', { readOnly: true, rows: 2, class: 'mono', 'aria-label': 'Generated token or secrets', value: generated });
  return notice('secret',
    h('p', {}, 'Generated credentials, shown only now: give them to the sender and keep them safe.'),
    box,
    h('div', { class: 'actions' }, copyButton('Copy', () => generated)));
}

/** The endpoint, and a request for the scheme (signed in the browser) to copy. */
async function requestPanel(ctx, connector, section) {
  const endpoint = new URL(connector.endpoint, location.origin).toString();
  const kind = credentialKind(connector.auth);
  const credential = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false' });
  const body = h('textarea', { class: 'mono', rows: 6, spellcheck: 'false', value: JSON.stringify(await starterPayload(connector)) });
  const test = checkbox('Send as test data (?test=true)', true);
  const output = codeBlock('', 'curl command', { 'data-testid': 'curl' });
  let command = '';
  let sequence = 0;
  const update = debounce(async () => {
    const mine = ++sequence;
    let text;
    try {
      const request = await buildRequest(connector, credential.value, body.value, { test: test.input.checked });
      command = request ? curlCommand(request) : '';
      text = request ? command : `The console cannot build a request for the ${connector.auth?.type} scheme.`;
    } catch (error) {
      command = '';
      text = error.message;
    }
    if (mine === sequence) output.textContent = text;
  }, 150);
  for (const input of [credential, body, test.input]) input.addEventListener('input', update);
  section.addEventListener('credential', (event) => { credential.value = event.detail; update(); });
  update();
  const timestamped = schemeOf(connector.auth?.type)?.timestamped;
  return h('div', {},
    h('h2', {}, 'Endpoint'),
    h('p', {}, h('code', { 'data-testid': 'endpoint' }, endpoint), ' ', copyButton('Copy URL', () => endpoint)),
    h('h3', {}, 'A request to copy'),
    kind ? field(kind === 'token' ? 'Token to send' : 'Secret to sign with', credential,
      kind === 'token'
        ? 'Not stored and not sent anywhere: only used here to fill in the request below.'
        : 'The server never shows a secret again: paste one here. It is not stored and not sent anywhere, only used in this page to sign the request below.') : null,
    field('Request body', body),
    test.node,
    timestamped ? h('p', { class: 'hint' }, `The signature covers the time it was made: the request is accepted for ${connector.auth.toleranceSeconds ?? 300} seconds.`) : null,
    connector.auth?.type === 'hubspot' && !connector.publicBaseUrl
      ? h('p', { class: 'hint' }, `Signed for ${location.origin}, where this console runs: the server checks it against its --public-base-url.`)
      : null,
    output,
    h('div', { class: 'actions' }, copyButton('Copy curl command', () => command)));
}

function deletePanel(ctx, connector) {
  const status = h('div', { 'aria-live': 'polite' });
  const confirm = h('button', { type: 'button', class: 'danger', hidden: true }, `Yes, delete ${connector.name}`);
  const start = h('button', { type: 'button', class: 'secondary' }, 'Delete connector…');
  start.addEventListener('click', () => { confirm.hidden = false; confirm.focus(); });
  confirm.addEventListener('click', async () => {
    try {
      await api('DELETE', programPath(ctx.programId, 'connectors', connector.id));
      ctx.go(['p', ctx.programId, 'connectors']);
    } catch (error) {
      status.replaceChildren(problemNotice(error, 'The connector was not deleted'));
    }
  });
  return h('div', {},
    h('h2', {}, 'Delete'),
    h('p', {}, 'Deleting a connector deletes its rules; its events stay in the log.'),
    h('div', { class: 'actions' }, start, confirm),
    status);
}

/**
 * A connector as the API shows it, back into a body for PUT: every setting as it is, the
 * secrets left out (so they are kept).
 */
export function specOf(connector, changes = {}) {
  const { secretCount, secrets, token, ...auth } = connector.auth ?? {};
  return {
    name: connector.name,
    eventType: connector.eventType,
    auth,
    mapping: connector.mapping,
    testMode: connector.testMode,
    maxEventAgeDays: connector.maxEventAgeDays,
    publicBaseUrl: connector.publicBaseUrl,
    ...changes,
  };
}

/** A labelled select of the program's connectors; `allowAll` adds an "all" choice. */
export function connectorSelect(items, value, { allowAll = false, label = 'Connector' } = {}) {
  const options = items.map((c) => [c.id, `${c.name} (${c.eventType})`]);
  if (allowAll) options.unshift(['', 'All connectors']);
  const control = select(options, value ?? (allowAll ? '' : items[0]?.id));
  return { control, node: field(label, control) };
}
