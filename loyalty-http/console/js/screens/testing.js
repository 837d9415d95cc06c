// Test events and purge: send a payload as test data through the connector's own
// authentication (?test=true), or simulate it (nothing stored); purge the connector's test
// data and see what was deleted.

import { api, programPath } from '../api.js';
import { h, field, href, notice, problemNotice, table, statusText } from '../dom.js';
import { buildRequest, credentialKind, send } from '../signature.js';
import { starterPayload, connectorSelect } from './connectors.js';
import { resultView } from './playground.js';

export async function render(ctx) {
  const { items: connectors } = await api('GET', programPath(ctx.programId, 'connectors'));
  if (!connectors.length) return h('section', {}, h('h1', {}, 'Test events'), h('p', {}, 'Create a connector first.'));
  const connectorId = connectors.some((c) => c.id === ctx.query.connector) ? ctx.query.connector : connectors[0].id;
  const connector = connectors.find((c) => c.id === connectorId);
  const choice = connectorSelect(connectors, connectorId);
  choice.control.addEventListener('change', () => ctx.go(['p', ctx.programId, 'testing'], { connector: choice.control.value }));

  const payload = h('textarea', { class: 'code', spellcheck: 'false', value: JSON.stringify(await starterPayload(connector), null, 2) });
  const kind = credentialKind(connector.auth);
  const credential = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false' });
  const output = h('div', { 'aria-live': 'polite', 'data-testid': 'test-result' });

  const sendButton = h('button', { type: 'button', disabled: !kind }, 'Send as a test event');
  sendButton.addEventListener('click', async () => {
    try {
      const request = await buildRequest(connector, credential.value, payload.value, { test: true });
      const { status, data } = await send(request);
      if (status !== 200) {
        output.replaceChildren(problemNotice({ message: data?.detail ?? String(data), status, problem: data ?? {} }, `The endpoint answered ${status}`));
        return;
      }
      output.replaceChildren(
        h('p', {}, `Sent: ${data.accepted} accepted, ${data.duplicates} duplicate, ${data.ignored} ignored, ${data.rejected} rejected.`),
        table(['Item', 'Status', 'Points', 'Log entry'], data.results.map((r) => h('tr', {},
          h('td', { class: 'num' }, String(r.index)),
          h('td', {}, statusText(r.status), r.reason ? ` (${r.reason})` : '', r.error ? ` (${r.error.code}: ${r.error.message})` : ''),
          h('td', { class: 'num' }, String(r.points ?? 0)),
          h('td', {}, h('a', { href: href(['p', ctx.programId, 'events', r.eventId]) }, r.eventId))))));
    } catch (error) {
      output.replaceChildren(problemNotice(error, 'Not sent'));
    }
  });

  const simulateButton = h('button', { type: 'button', class: 'secondary' }, 'Simulate (store nothing)');
  simulateButton.addEventListener('click', async () => {
    try {
      const answer = await api('POST', programPath(ctx.programId, 'connectors', connectorId, 'simulate'), { body: { payload: JSON.parse(payload.value), test: true } });
      output.replaceChildren(h('p', {}, 'Simulated: nothing was stored.'), ...answer.results.map((r) => resultView(r, answer.results.length > 1)));
    } catch (error) {
      output.replaceChildren(problemNotice(error, 'Simulation failed'));
    }
  });

  const purgeOutput = h('div', { 'aria-live': 'polite' });
  const confirm = h('button', { type: 'button', class: 'danger', hidden: true }, 'Yes, purge the test data');
  const start = h('button', { type: 'button', class: 'secondary' }, 'Purge test data…');
  start.addEventListener('click', () => { confirm.hidden = false; confirm.focus(); });
  confirm.addEventListener('click', async () => {
    try {
      const counts = await api('POST', programPath(ctx.programId, 'connectors', connectorId, 'purge'));
      confirm.hidden = true;
      purgeOutput.replaceChildren(notice('success', h('p', {}, `Purged ${counts.events} events, ${counts.ledgerEntries} ledger entries and ${counts.members} members.`)));
    } catch (error) {
      purgeOutput.replaceChildren(problemNotice(error, 'Nothing was purged'));
    }
  });

  return h('section', {},
    h('h1', {}, 'Test events'),
    h('p', {}, 'Test events go through the whole pipeline and are stored as test data, apart from live data; purge them when done.'),
    h('div', { class: 'row' }, choice.node),
    field('Payload (JSON)', payload),
    kind
      ? field(kind === 'token' ? 'Connector token' : 'Connector secret', credential, 'Used only to authenticate this request from your browser; not stored.')
      : notice('secret', h('p', {}, `The console cannot sign requests for the ${connector.auth?.type} scheme: simulate instead.`)),
    h('div', { class: 'actions' }, sendButton, simulateButton),
    output,
    h('h2', {}, 'Purge'),
    h('p', {}, 'Deletes this connector\'s test events, their ledger entries and the members only they created. Live data is never touched.'),
    h('div', { class: 'actions' }, start, confirm),
    purgeOutput);
}
