// Replays: what failed (the rejected and ignored items grouped by code, the quarantine to fix
// before a replay); a replay of a connector's logged items through its current or a draft
// mapping, a dry run or applied; and its report, followed while it runs.

import { api, programPath } from '../api.js';
import { h, field, checkbox, href, notice, problemNotice, table, statusText, when } from '../dom.js';
import { connectorSelect } from './connectors.js';

const STATUSES = ['rejected', 'ignored', 'accepted', 'duplicate'];

export async function render(ctx) {
  const { items: connectors } = await api('GET', programPath(ctx.programId, 'connectors'));
  if (ctx.rest[0]) return report(ctx, connectors, ctx.rest[0]);
  return start(ctx, connectors);
}

/** `2026-01-01T10:00` (a datetime-local, the browser's time zone) to RFC 3339 UTC. */
const toIso = (local) => (local ? new Date(local).toISOString() : undefined);

async function start(ctx, connectors) {
  const section = h('section', {}, h('h1', {}, 'Replays'));
  if (!connectors.length) {
    section.append(h('p', {}, 'Create a connector first.'));
    return section;
  }
  const connectorId = connectors.some((c) => c.id === ctx.query.connector) ? ctx.query.connector : connectors[0].id;
  const connector = connectors.find((c) => c.id === connectorId);
  const choice = connectorSelect(connectors, connectorId);
  choice.control.addEventListener('change', () => ctx.go(['p', ctx.programId, 'replays'], { connector: choice.control.value }));

  const { items: groups } = await api('GET', programPath(ctx.programId, 'events', 'errors'), { query: { connectorId } });
  const failures = groups.length
    ? table(['Status', 'Code', 'Message', 'Where', 'Items', 'First', 'Last', 'Example'], groups.map((g) => h('tr', {},
      h('td', {}, statusText(g.status)),
      h('td', { class: 'mono' }, g.code),
      h('td', {}, g.message ?? ''),
      h('td', { class: 'mono' }, g.path ?? ''),
      h('td', { class: 'num' }, String(g.count)),
      h('td', {}, when(g.firstAt)),
      h('td', {}, when(g.lastAt)),
      h('td', {}, h('a', { href: href(['p', ctx.programId, 'events', g.exampleEventId]) }, 'an example')))), 'Rejected and ignored items, largest group first')
    : h('p', {}, 'Nothing of this connector was rejected or ignored.');

  const from = h('input', { type: 'datetime-local' });
  const to = h('input', { type: 'datetime-local' });
  const statuses = STATUSES.map((status) => ({ status, box: checkbox(status, status === 'rejected' || status === 'ignored') }));
  const draft = h('textarea', { class: 'code', spellcheck: 'false', value: connector.mapping });
  const apply = checkbox('Apply: store the changes (points awarded or taken back, failed items processed anew)', false);
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { 'aria-labelledby': 'replay-title' },
    h('h2', { id: 'replay-title' }, 'Replay'),
    h('p', {}, 'Runs the connector\'s logged items again through the mapping below and its current rules. A dry run stores nothing: it reports what would change.'),
    h('div', { class: 'row' }, field('Received from', from), field('Received before', to)),
    h('fieldset', {}, h('legend', {}, 'Items to replay'), h('div', { class: 'row' }, statuses.map((s) => s.box.node))),
    field('Mapping (JSONata)', draft, 'A draft is used for this replay only; save it with the connector or in the playground.'),
    apply.node,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Start replay')),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {
      connectorId,
      from: toIso(from.value),
      to: toIso(to.value),
      statuses: statuses.filter((s) => s.box.input.checked).map((s) => s.status),
      mapping: draft.value === connector.mapping ? undefined : draft.value,
      apply: apply.input.checked,
    };
    try {
      const replay = await api('POST', programPath(ctx.programId, 'replays'), { body });
      ctx.go(['p', ctx.programId, 'replays', replay.id]);
    } catch (error) {
      status.replaceChildren(problemNotice(error, 'The replay did not start'));
    }
  });

  section.append(
    h('div', { class: 'row' }, choice.node),
    h('h2', {}, 'What failed'),
    failures,
    form);
  return section;
}

const STATES = { running: 'running', done: 'done', failed: 'failed', cancelled: 'cancelled' };

async function report(ctx, connectors, replayId) {
  const names = new Map(connectors.map((c) => [c.id, c.name]));
  const { items: rules } = await api('GET', programPath(ctx.programId, 'rules'));
  const ruleNames = new Map(rules.map((r) => [r.id, r.name]));
  const path = programPath(ctx.programId, 'replays', replayId);
  const body = h('div', { 'data-testid': 'replay' });
  const progress = h('progress', { max: 1, value: 0, 'aria-label': 'Replay progress' });
  const stateText = h('p', { 'aria-live': 'polite', 'data-testid': 'replay-state' });
  const actions = h('div', { class: 'actions' });
  const status = h('div', { 'aria-live': 'polite' });
  let timer;

  const draw = (replay) => {
    progress.max = Math.max(replay.total, 1);
    progress.value = replay.processed;
    stateText.textContent = `${replay.spec?.apply ? 'Applied replay' : 'Dry run'}: ${STATES[replay.state] ?? replay.state}, ${replay.processed} of ${replay.total} items.`;
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel replay');
    cancel.addEventListener('click', async () => {
      try { draw(await api('DELETE', path)); } catch (error) { status.replaceChildren(problemNotice(error, 'Not cancelled')); }
    });
    const applyIt = h('button', { type: 'button', class: 'danger' }, 'Apply these changes');
    applyIt.addEventListener('click', async () => {
      try {
        const applied = await api('POST', programPath(ctx.programId, 'replays'), { body: { ...replay.spec, apply: true } });
        ctx.go(['p', ctx.programId, 'replays', applied.id]);
      } catch (error) {
        status.replaceChildren(problemNotice(error, 'The replay was not applied'));
      }
    });
    actions.replaceChildren(...[
      replay.state === 'running' ? cancel : null,
      replay.state === 'done' && !replay.spec?.apply ? applyIt : null,
      h('a', { class: 'button secondary', href: href(['p', ctx.programId, 'replays'], { connector: replay.spec?.connectorId }) }, 'New replay'),
    ].filter(Boolean));
    body.replaceChildren(...[
      replay.error ? notice('error', h('p', {}, replay.error)) : null,
      replay.report ? reportView(ctx, replay.report, ruleNames) : null,
    ].filter(Boolean));
  };

  const poll = async () => {
    try {
      const replay = await api('GET', path);
      if (ctx.stale()) return;
      draw(replay);
      if (replay.state === 'running') timer = setTimeout(poll, 500);
    } catch (error) {
      status.replaceChildren(problemNotice(error, 'The replay could not be read'));
    }
  };
  ctx.onLeave(() => clearTimeout(timer));
  const first = await api('GET', path);
  draw(first);
  if (first.state === 'running') timer = setTimeout(poll, 500);

  const spec = first.spec ?? {};
  return h('section', {},
    h('p', {}, h('a', { href: href(['p', ctx.programId, 'replays'], { connector: spec.connectorId }) }, '← Replays')),
    h('h1', {}, 'Replay ', h('span', { class: 'mono' }, replayId)),
    h('dl', { class: 'props' },
      h('dt', {}, 'Connector'), h('dd', {}, names.get(spec.connectorId) ?? spec.connectorId ?? ''),
      h('dt', {}, 'Items'), h('dd', {}, (spec.statuses ?? STATUSES).join(', ')),
      h('dt', {}, 'Received'), h('dd', {}, spec.from ? when(spec.from) : 'from the start', ' – ', when(spec.to ?? first.until)),
      h('dt', {}, 'Mapping'), h('dd', {}, spec.mapping ? 'a draft' : 'the connector\'s'),
      h('dt', {}, 'Started'), h('dd', {}, when(first.createdAt))),
    stateText, progress, actions, status, body);
}

function reportView(ctx, report, ruleNames) {
  const counts = STATUSES.map((s) => h('tr', {}, h('td', {}, statusText(s)), h('td', { class: 'num' }, String(report.before[s])), h('td', { class: 'num' }, String(report.after[s]))));
  const member = (id) => h('a', { href: href(['p', ctx.programId, 'members', id]) }, id);
  const outcome = (o) => (o ? [statusText(o.status), ` ${o.points} points`, o.error ? ` (${o.error.code})` : '', o.reason ? ` (${o.reason})` : ''] : '');
  return h('div', {},
    h('h2', {}, report.applied ? 'What changed' : 'What would change'),
    table(['Status', 'Before', 'After'], counts, 'Items by status'),
    h('p', { 'data-testid': 'replay-points' }, `Points: ${report.points.before} before, ${report.points.after} after. Members whose points change: ${report.members.changed}. Items left as they were: ${report.skipped}.`),
    report.points.byRule.length
      ? table(['Rule', 'Before', 'After'], report.points.byRule.map((r) => h('tr', {},
        h('td', {}, ruleNames.get(r.ruleId) ?? r.ruleId), h('td', { class: 'num' }, String(r.before)), h('td', { class: 'num' }, String(r.after)))), 'Points by rule')
      : null,
    report.members.largest.length
      ? table(['Member', 'Before', 'After'], report.members.largest.map((m) => h('tr', {},
        h('td', {}, m.memberId ? member(m.memberId) : 'a member it would enrol'), h('td', { class: 'num' }, String(m.before)), h('td', { class: 'num' }, String(m.after)))), 'Largest changes by member')
      : null,
    report.changes.length
      ? table(['Event', 'Before', 'After'], report.changes.map((c) => h('tr', {},
        h('td', {}, h('a', { href: href(['p', ctx.programId, 'events', c.eventId]) }, c.eventId)),
        h('td', {}, outcome(c.before)),
        h('td', {}, outcome(c.after)))), `Items that change: ${report.changed} (the first ${report.changes.length} shown)`)
      : h('p', {}, 'No item changes.'));
}
