// Members: find one by identifier; its balance, identifiers and activity (events and ledger
// entries, newest first). Pending and expiring points, adjustments and the live stream are
// added here when their API routes exist.

import { api, programPath } from '../api.js';
import { h, field, href, problemNotice, table, statusText, when, labelCells } from '../dom.js';

export async function render(ctx) {
  if (ctx.rest[0]) return member(ctx, ctx.rest[0]);
  return finder(ctx);
}

async function finder(ctx) {
  const program = await api('GET', programPath(ctx.programId));
  const kind = h('input', { type: 'text', value: ctx.query.kind ?? program.defaultIdentifierKind, autocomplete: 'off' });
  const value = h('input', { type: 'text', value: ctx.query.value ?? '', required: true, autocomplete: 'off', spellcheck: 'false' });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { 'aria-label': 'Find a member' },
    h('div', { class: 'row' }, field('Identifier kind', kind), field('Identifier', value, 'Normalised as events\' identifiers are (e-mail addresses are lower-cased).')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Find member')),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const found = await api('GET', programPath(ctx.programId, 'members'), { query: { kind: kind.value.trim(), value: value.value } });
      ctx.go(['p', ctx.programId, 'members', found.id]);
    } catch (error) {
      status.replaceChildren(problemNotice(error, error.status === 404 ? 'No member has this identifier' : 'Search failed'));
    }
  });
  return h('section', {}, h('h1', {}, 'Members'), form);
}

const COLUMNS = ['When', 'What', 'Status', 'Points', 'Rule', 'Data', 'Event'];
const labelled = (row) => labelCells(COLUMNS, row);

async function member(ctx, memberId) {
  const [m, rules] = await Promise.all([
    api('GET', programPath(ctx.programId, 'members', memberId)),
    api('GET', programPath(ctx.programId, 'rules')),
  ]);
  const ruleNames = new Map(rules.items.map((r) => [r.id, r.name]));
  const body = h('tbody', {});
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older activity');
  let cursor;
  const load = async () => {
    const page = await api('GET', programPath(ctx.programId, 'members', memberId, 'activity'), { query: { cursor, limit: 50 } });
    body.append(...page.items.map((a) => labelled(h('tr', {},
      h('td', {}, when(a.at)),
      h('td', {}, a.type === 'event' ? 'event' : 'ledger entry'),
      h('td', {}, a.status ? statusText(a.status) : ''),
      h('td', { class: 'num' }, String(a.points)),
      h('td', {}, a.ruleId ? ruleNames.get(a.ruleId) ?? a.ruleId : ''),
      h('td', {}, a.test ? 'test' : 'live'),
      h('td', {}, h('a', { href: href(['p', ctx.programId, 'events', a.eventId]) }, a.clientEventId ?? a.eventId))))));
    cursor = page.nextCursor;
    more.hidden = !cursor;
  };
  more.addEventListener('click', () => load().catch((error) => more.replaceWith(problemNotice(error))));
  await load();
  const activity = table(COLUMNS, []);
  activity.querySelector('tbody').replaceWith(body);
  return h('section', {},
    h('p', {}, h('a', { href: href(['p', ctx.programId, 'members']) }, '← Find a member')),
    h('h1', {}, 'Member ', h('span', { class: 'mono' }, m.id)),
    h('p', {}, 'Balance ', h('span', { class: 'balance', 'data-testid': 'balance' }, String(m.balance)), ' points'),
    h('dl', { class: 'props' },
      h('dt', {}, 'Identifiers'), h('dd', {}, m.identifiers.map((i) => h('div', {}, `${i.kind}: ${i.value}`))),
      h('dt', {}, 'Data'), h('dd', {}, m.test ? 'test member' : 'live member'),
      h('dt', {}, 'Since'), h('dd', {}, when(m.createdAt))),
    h('h2', {}, 'Activity'),
    activity,
    h('div', { class: 'actions' }, more),
    h('p', {}, h('a', { href: href(['p', ctx.programId, 'events'], { member: m.id }) }, 'This member\'s events in the log')));
}
