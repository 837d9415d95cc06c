// The mapping playground: a payload (typed in or picked from the log) and a mapping; as either
// changes, the simulate route says what would happen (the canonical event, the member, the
// rule trace, the points, errors with their position). Nothing is stored until "Save".

import { api, programPath } from '../api.js';
import { h, field, notice, problemNotice, jsonBlock, table, statusText, debounce } from '../dom.js';
import { starterPayload, specOf, connectorSelect } from './connectors.js';

export async function render(ctx) {
  const { items: connectors } = await api('GET', programPath(ctx.programId, 'connectors'));
  if (!connectors.length) {
    return h('section', {}, h('h1', {}, 'Mapping playground'), h('p', {}, 'Create a connector first.'));
  }
  const connectorId = connectors.some((c) => c.id === ctx.query.connector) ? ctx.query.connector : connectors[0].id;
  const connector = connectors.find((c) => c.id === connectorId);
  const choice = connectorSelect(connectors, connectorId);
  choice.control.addEventListener('change', () => ctx.go(['p', ctx.programId, 'playground'], { connector: choice.control.value }));

  let payloadText = JSON.stringify(await starterPayload(connector), null, 2);
  if (ctx.query.event) {
    const logged = await api('GET', programPath(ctx.programId, 'events', ctx.query.event));
    payloadText = JSON.stringify(logged.raw, null, 2);
  }
  const payload = h('textarea', { class: 'code', spellcheck: 'false', value: payloadText });
  const mapping = h('textarea', { class: 'code', spellcheck: 'false', value: connector.mapping });
  const output = h('div', { 'aria-live': 'polite', 'data-testid': 'simulation' });
  const saveStatus = h('div', { 'aria-live': 'polite' });

  // Recent events of this connector, to replay one of their raw payloads here.
  const recent = await api('GET', programPath(ctx.programId, 'events'), { query: { connectorId, limit: 20 } });
  const pick = h('select', {},
    h('option', { value: '' }, recent.items.length ? 'Choose a logged event…' : 'No logged event yet'),
    recent.items.map((e) => h('option', { value: e.id }, `${new Date(e.receivedAt).toLocaleString()} · ${e.status}${e.test ? ' · test' : ''} · ${e.id}`)));
  pick.addEventListener('change', () => {
    const event = recent.items.find((e) => e.id === pick.value);
    if (!event) return;
    payload.value = JSON.stringify(event.raw, null, 2);
    simulate();
  });

  let sequence = 0;
  const simulate = debounce(async () => {
    const mine = ++sequence;
    let body;
    try {
      body = JSON.parse(payload.value);
    } catch (error) {
      output.replaceChildren(notice('error', h('p', {}, `The payload is not JSON: ${error.message}`)));
      return;
    }
    try {
      const answer = await api('POST', programPath(ctx.programId, 'connectors', connectorId, 'simulate'), { body: { payload: body, mapping: mapping.value } });
      if (mine !== sequence || ctx.stale()) return;
      output.replaceChildren(...answer.results.map((result) => resultView(result, answer.results.length > 1)));
    } catch (error) {
      if (mine !== sequence || ctx.stale()) return;
      output.replaceChildren(problemNotice(error, error.problem?.code === 'invalid_mapping' ? 'The mapping does not compile' : 'Simulation failed'));
    }
  }, 400);
  ctx.onLeave(() => simulate.cancel());
  payload.addEventListener('input', simulate);
  mapping.addEventListener('input', simulate);
  simulate();

  const save = h('button', { type: 'button' }, 'Save mapping to the connector');
  save.addEventListener('click', async () => {
    try {
      const saved = await api('PUT', programPath(ctx.programId, 'connectors', connectorId), { body: specOf(connector, { mapping: mapping.value }) });
      Object.assign(connector, saved);
      saveStatus.replaceChildren(notice('success', h('p', {}, `Mapping saved (revision ${saved.revision}).`)));
    } catch (error) {
      saveStatus.replaceChildren(problemNotice(error, 'The mapping was not saved'));
    }
  });

  return h('section', {},
    h('h1', {}, 'Mapping playground'),
    h('p', {}, 'Edit the payload or the mapping: the result below follows. Nothing is stored until you save the mapping.'),
    h('div', { class: 'row' }, choice.node, field('Payload from the event log', pick)),
    h('div', { class: 'grid2' },
      field('Payload (JSON: one object, or an array for a bulk)', payload),
      field('Mapping (JSONata)', mapping)),
    h('div', { class: 'actions' }, save),
    saveStatus,
    h('h2', {}, 'Result'),
    output);
}

/** One item's simulated outcome. */
export function resultView(result, numbered) {
  const error = result.error;
  return h('article', { class: 'result' },
    h('h3', {}, numbered ? `Item ${result.index}: ` : '', statusText(result.status),
      result.points ? ` · ${result.points} points` : ''),
    result.reason ? h('p', {}, `Ignored: ${result.reason}`) : null,
    error ? notice('error', h('p', {}, `${error.code}: ${error.message}`), error.path ? h('p', {}, `at ${error.path}`) : null) : null,
    (result.warnings ?? []).length ? notice('secret', result.warnings.map((w) => h('p', {}, w))) : null,
    result.member ? h('dl', { class: 'props' },
      h('dt', {}, 'Member'),
      h('dd', {}, `${result.member.kind}: ${result.member.value}`),
      h('dt', {}, 'Known as'),
      h('dd', {}, result.member.id ?? (result.member.wouldEnroll ? 'new: would be enrolled' : 'unknown: would not be enrolled'))) : null,
    traceTable(result.trace),
    h('h4', {}, 'Canonical event'),
    jsonBlock(result.mapped, 'Canonical event'));
}

export function traceTable(trace) {
  if (!trace?.length) return h('p', { class: 'muted' }, 'No rule ran (the connector has no rule, or the event was not accepted).');
  return table(['Rule', 'Fired', 'Points', 'Why not'], trace.map((t) => h('tr', {},
    h('td', {}, t.ruleName),
    h('td', {}, t.fired ? 'yes' : 'no'),
    h('td', { class: 'num' }, String(t.points)),
    h('td', {}, t.reason ?? ''))), 'Rule trace');
}

