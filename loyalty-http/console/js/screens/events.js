// The event log: filters (status, connector, member, time, live or test), pages, and one
// item with its raw payload, mapped event and rule trace.

import { api, programPath } from '../api.js';
import { h, field, select, href, notice, problemNotice, table, statusText, when, jsonBlock } from '../dom.js';
import { connectorSelect } from './connectors.js';
import { traceTable } from './playground.js';
import { openStream } from '../stream.js';

const STATUSES = [['', 'Any status'], ['accepted', 'accepted'], ['duplicate', 'duplicate'], ['ignored', 'ignored'], ['rejected', 'rejected']];

export async function render(ctx) {
  const { items: connectors } = await api('GET', programPath(ctx.programId, 'connectors'));
  const names = new Map(connectors.map((c) => [c.id, c.name]));
  if (ctx.rest[0]) return item(ctx, names, await api('GET', programPath(ctx.programId, 'events', ctx.rest[0])));
  return list(ctx, connectors, names);
}

/** `2026-01-01T10:00` (a datetime-local, the browser's time zone) to RFC 3339 UTC. */
const toIso = (local) => (local ? new Date(local).toISOString() : '');
const toLocal = (iso) => {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};

async function list(ctx, connectors, names) {
  const q = ctx.query;
  const page = await api('GET', programPath(ctx.programId, 'events'), {
    query: { status: q.status, connectorId: q.connector, memberId: q.member, since: q.since, until: q.until, test: q.test, cursor: q.cursor, limit: 50 },
  });
  const status = select(STATUSES, q.status ?? '');
  const connector = connectorSelect(connectors, q.connector ?? '', { allowAll: true });
  const member = h('input', { type: 'text', value: q.member ?? '', autocomplete: 'off', spellcheck: 'false' });
  const since = h('input', { type: 'datetime-local', value: toLocal(q.since) });
  const until = h('input', { type: 'datetime-local', value: toLocal(q.until) });
  const test = select([['', 'Live and test'], ['false', 'Live only'], ['true', 'Test only']], q.test ?? '');
  const form = h('form', { 'aria-label': 'Filter the event log' },
    h('div', { class: 'row' },
      field('Status', status), connector.node, field('Member id', member),
      field('Received from', since), field('Received before', until), field('Data', test)),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter'),
      h('a', { class: 'button secondary', href: href(['p', ctx.programId, 'events']) }, 'Clear filters')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.go(['p', ctx.programId, 'events'], {
      status: status.value, connector: connector.control.value, member: member.value.trim(),
      since: toIso(since.value), until: toIso(until.value), test: test.value,
    });
  });
  const rows = page.items.map((e) => h('tr', {},
    h('td', {}, h('a', { href: href(['p', ctx.programId, 'events', e.id]) }, when(e.receivedAt))),
    h('td', {}, statusText(e.status), e.reason ? ` (${e.reason})` : '', e.error ? ` (${e.error.code})` : ''),
    h('td', {}, names.get(e.connectorId) ?? e.connectorId),
    h('td', {}, e.memberId ? h('a', { href: href(['p', ctx.programId, 'members', e.memberId]) }, e.memberId) : ''),
    h('td', { class: 'num' }, String(e.points)),
    h('td', {}, e.test ? 'test' : 'live'),
    h('td', { class: 'mono' }, e.clientEventId ?? '')));
  // The newest page follows the live stream: new items are announced, shown on demand (so
  // that the list never moves under the reader).
  const arrivals = h('div', { 'aria-live': 'polite', 'data-testid': 'arrivals' });
  if (!q.cursor) {
    let count = 0;
    const show = h('button', { type: 'button', class: 'secondary' }, 'Show them');
    show.addEventListener('click', () => ctx.refresh());
    const stop = openStream(programPath(ctx.programId, 'stream'), {}, {
      onMessage: ({ event, data }) => {
        if (event !== 'event' || (q.connector && data.connectorId !== q.connector)) return;
        count += 1;
        arrivals.replaceChildren(notice('success', h('p', {}, `${count} new item${count === 1 ? '' : 's'} received. `, show)));
      },
      onState: (state) => { arrivals.dataset.stream = state; },
    });
    ctx.onLeave(stop);
  }
  return h('section', {},
    h('h1', {}, 'Event log'),
    form,
    arrivals,
    page.items.length
      ? table(['Received', 'Status', 'Connector', 'Member', 'Points', 'Data', 'Client event id'], rows, 'Newest first')
      : h('p', {}, 'No event matches.'),
    h('div', { class: 'actions' },
      q.cursor ? h('a', { class: 'button secondary', href: href(['p', ctx.programId, 'events'], { ...q, cursor: '' }) }, 'Newest') : null,
      page.nextCursor ? h('a', { class: 'button secondary', href: href(['p', ctx.programId, 'events'], { ...q, cursor: page.nextCursor }) }, 'Older events') : null));
}

function item(ctx, names, e) {
  const props = [
    ['Status', [statusText(e.status), e.reason ? ` (${e.reason})` : '']],
    ['Connector', h('a', { href: href(['p', ctx.programId, 'connectors', e.connectorId]) }, names.get(e.connectorId) ?? e.connectorId)],
    ['Member', e.memberId ? h('a', { href: href(['p', ctx.programId, 'members', e.memberId]) }, e.memberId) : 'none'],
    ['Points', String(e.points)],
    ['Data', e.test ? 'test' : 'live'],
    ['Received', when(e.receivedAt)],
    ['Occurred', e.occurredAt ? when(e.occurredAt) : 'unknown'],
    ['Client event id', e.clientEventId ?? 'none'],
  ];
  if (e.originalEventId) props.push([e.status === 'duplicate' ? 'Duplicate of' : 'Purchase refunded', h('a', { href: href(['p', ctx.programId, 'events', e.originalEventId]) }, e.originalEventId)]);
  return h('section', {},
    h('p', {}, h('a', { href: href(['p', ctx.programId, 'events'], { connector: e.connectorId }) }, '← Event log')),
    h('h1', {}, 'Event ', h('span', { class: 'mono' }, e.id)),
    e.error ? notice('error', h('p', {}, `${e.error.code}: ${e.error.message}`), e.error.path ? h('p', {}, `at ${e.error.path}`) : null) : null,
    (e.warnings ?? []).length ? notice('secret', e.warnings.map((w) => h('p', {}, w))) : null,
    h('dl', { class: 'props' }, props.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('div', { class: 'actions' }, h('a', { class: 'button secondary', href: href(['p', ctx.programId, 'playground'], { connector: e.connectorId, event: e.id }) }, 'Open in the playground')),
    traceTable(e.trace),
    e.status === 'accepted' && e.points > 0 && e.memberId ? reverseForm(ctx, e) : null,
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', {}, 'Raw, as received'), e.rawTruncated ? h('p', { class: 'muted' }, 'Truncated: only its first bytes were kept.') : null, jsonBlock(e.raw, 'Raw payload')),
      h('div', {}, h('h2', {}, 'Mapped'), e.mapped === undefined ? h('p', { class: 'muted' }, 'Not mapped.') : jsonBlock(e.mapped, 'Mapped event'))));
}

/** Takes back what the event awarded (all that is left, or some points of it), with a reason. */
function reverseForm(ctx, e) {
  const points = h('input', { type: 'number', min: 1, step: 1, autocomplete: 'off' });
  const reason = h('input', { type: 'text', required: true, maxlength: 500, autocomplete: 'off' });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { 'aria-labelledby': 'reverse-title' },
    h('h2', { id: 'reverse-title' }, 'Reverse'),
    h('p', {}, 'Takes back points this event awarded, as a cancelled order would. Spent points may leave the balance below zero.'),
    h('div', { class: 'row' },
      field('Points to take back', points, 'Empty: all that is left.'),
      field('Reason', reason)),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger' }, 'Reverse points')),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const body = { reason: reason.value, points: points.value === '' ? undefined : Number(points.value) };
      const answer = await api('POST', programPath(ctx.programId, 'events', e.id, 'reverse'), { body });
      // The balance from a fresh read of the member: what can be spent, without pending points.
      const member = await api('GET', programPath(ctx.programId, 'members', e.memberId));
      status.replaceChildren(notice('success',
        h('p', {}, `Took back ${-answer.points} points: the member's balance is now ${member.balance}.`),
        h('ul', {}, answer.reversed.map((r) => h('li', {}, `${e.trace?.find((t) => t.ruleId === r.ruleId)?.ruleName ?? r.ruleId}: ${r.points}`)))));
      form.reset();
    } catch (error) {
      status.replaceChildren(problemNotice(error, 'Nothing was taken back'));
    }
  });
  return form;
}
