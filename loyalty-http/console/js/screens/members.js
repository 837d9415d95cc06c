// Members: find one by identifier; its balance, pending and expiring points, what is left of
// each limit, its activity (events and ledger entries, newest first), and adjustments.

import { api, programPath } from '../api.js';
import { h, field, href, notice, problemNotice, table, statusText, when, labelCells, debounce } from '../dom.js';
import { openStream } from '../stream.js';

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

const COLUMNS = ['When', 'What', 'Status', 'Points', 'Rule', 'Reason', 'Data', 'Event'];
const labelled = (row) => labelCells(COLUMNS, row);

/** `1 award per day`, `100 points per lifetime`. */
export function limitText(limit) {
  const amount = limit.count !== undefined ? `${limit.count} award${limit.count === 1 ? '' : 's'}` : `${limit.points} points`;
  return limit.per === 'lifetime' ? `${amount} in a lifetime` : `${amount} per ${limit.per}`;
}

/** A fresh idempotency key, so that a form sent twice (a double click, a retry) acts once. */
const freshKey = () => `console-${crypto.randomUUID()}`;

async function member(ctx, memberId) {
  const path = (...rest) => programPath(ctx.programId, 'members', memberId, ...rest);
  const [m, rules] = await Promise.all([api('GET', path()), api('GET', programPath(ctx.programId, 'rules'))]);
  const ruleNames = new Map(rules.items.map((r) => [r.id, r.name]));

  // The numbers, redrawn from a fresh read of the member.
  const balance = h('span', { class: 'balance', 'data-testid': 'balance' });
  const pending = h('span', { 'data-testid': 'pending' });
  const expiring = h('div', { 'data-testid': 'expiring' });
  const showNumbers = (data) => {
    balance.textContent = String(data.balance);
    pending.textContent = String(data.pending ?? 0);
    expiring.replaceChildren(data.expiring?.length
      ? h('ul', { class: 'plain' }, data.expiring.map((lot) => h('li', {}, `${lot.points} point${lot.points === 1 ? '' : 's'} on `, when(lot.at))))
      : 'nothing');
  };
  showNumbers(m);

  const allowance = h('div', { 'data-testid': 'allowance' });
  const showAllowance = async () => {
    const { items } = await api('GET', path('allowance'));
    const rows = items.flatMap((rule) => (rule.limits.length ? rule.limits : [null]).map((limit) => h('tr', {},
      h('td', {}, rule.ruleName),
      h('td', {}, limit ? limitText(limit) : 'no limit'),
      h('td', { class: 'num' }, limit ? String(limit.used) : ''),
      h('td', { class: 'num' }, limit ? String(limit.remaining) : ''),
      h('td', {}, limit ? (limit.resetsAt ? when(limit.resetsAt) : 'never') : ''))));
    allowance.replaceChildren(rows.length
      ? table(['Rule', 'Limit', 'Used', 'Left', 'Resets'], rows, 'What is left of each limit in the current period')
      : h('p', {}, 'The program has no rule.'));
  };

  const body = h('tbody', {});
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older activity');
  let cursor;
  const activityRow = (a) => labelled(h('tr', {},
    h('td', {}, when(a.at)),
    h('td', {}, a.type === 'event' ? 'event' : a.kind ?? 'ledger entry'),
    h('td', {}, a.status ? statusText(a.status) : ''),
    h('td', { class: 'num' }, String(a.points)),
    h('td', {}, a.ruleId ? ruleNames.get(a.ruleId) ?? a.ruleId : ''),
    h('td', {}, a.reason ?? ''),
    h('td', {}, a.test ? 'test' : 'live'),
    h('td', {}, a.eventId ? h('a', { href: href(['p', ctx.programId, 'events', a.eventId]) }, a.clientEventId ?? a.eventId) : '')));
  const load = async ({ fromTop = false } = {}) => {
    if (fromTop) cursor = undefined;
    const page = await api('GET', path('activity'), { query: { cursor, limit: 50 } });
    const rows = page.items.map(activityRow);
    if (fromTop) body.replaceChildren(...rows);
    else body.append(...rows);
    cursor = page.nextCursor;
    more.hidden = !cursor;
  };
  more.addEventListener('click', () => load().catch((error) => more.replaceWith(problemNotice(error))));
  await Promise.all([load(), showAllowance()]);
  const activity = table(COLUMNS, []);
  activity.querySelector('tbody').replaceWith(body);

  /** Everything shown again from the API (after an adjustment, or a change seen live). */
  const reload = async () => {
    const fresh = await api('GET', path());
    if (ctx.stale()) return null;
    showNumbers(fresh);
    await Promise.all([load({ fromTop: true }), showAllowance()]);
    return fresh;
  };

  // Live: every change to this member's points, as the stream announces it, is read again.
  const live = h('p', { class: 'muted', 'data-testid': 'live', 'aria-live': 'polite' }, 'Connecting to live updates…');
  const refresh = debounce(() => reload().catch((error) => live.replaceChildren(problemNotice(error, 'Live update failed'))), 150);
  const stop = openStream(programPath(ctx.programId, 'stream'), { memberId }, {
    onMessage: ({ event, data }) => {
      // `reset`: the server could not resume where this page left off, so read it all again.
      if ((event === 'ledger' && data.memberId === memberId) || event === 'reset') refresh();
    },
    onState: (state, detail) => {
      live.textContent = {
        live: 'Live: changes appear as they happen.',
        reconnecting: `Live updates interrupted (${detail}); reconnecting…`,
        stopped: `No live updates (${detail}).`,
      }[state];
    },
  });
  ctx.onLeave(() => { stop(); refresh.cancel(); });

  return h('section', {},
    h('p', {}, h('a', { href: href(['p', ctx.programId, 'members']) }, '← Find a member')),
    h('h1', {}, 'Member ', h('span', { class: 'mono' }, m.id)),
    live,
    h('dl', { class: 'props figures' },
      h('dt', {}, 'Balance'), h('dd', {}, balance, ' points'),
      h('dt', {}, 'Pending'), h('dd', {}, pending, ' points, not yet spendable'),
      h('dt', {}, 'Expiring next'), h('dd', {}, expiring)),
    h('dl', { class: 'props' },
      h('dt', {}, 'Identifiers'), h('dd', {}, m.identifiers.map((i) => h('div', {}, `${i.kind}: ${i.value}`))),
      h('dt', {}, 'Data'), h('dd', {}, m.test ? 'test member' : 'live member'),
      h('dt', {}, 'Since'), h('dd', {}, when(m.createdAt))),
    adjustmentForm(ctx, path, reload),
    h('h2', {}, 'Allowance'),
    allowance,
    h('h2', {}, 'Activity'),
    activity,
    h('div', { class: 'actions' }, more),
    h('p', {}, h('a', { href: href(['p', ctx.programId, 'events'], { member: m.id }) }, 'This member\'s events in the log')));
}

/** Adds or removes points by hand, with a reason; the key makes a repeated send act once. */
function adjustmentForm(ctx, path, reload) {
  const points = h('input', { type: 'number', step: 1, required: true, autocomplete: 'off' });
  const reason = h('input', { type: 'text', required: true, maxlength: 500, autocomplete: 'off' });
  const key = h('input', { type: 'text', maxlength: 200, value: freshKey(), autocomplete: 'off', spellcheck: 'false' });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { 'aria-labelledby': 'adjust-title' },
    h('h2', { id: 'adjust-title' }, 'Adjust points'),
    h('div', { class: 'row' },
      field('Points', points, 'Negative to remove points.'),
      field('Reason', reason),
      field('Idempotency key', key, 'The same key again adjusts only once.')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Adjust')),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const entry = await api('POST', path('adjustments'), { body: { points: Number(points.value), reason: reason.value, idempotencyKey: key.value.trim() || undefined } });
      form.reset();
      key.value = freshKey();
      // The balance from a fresh read of the member: what can be spent, without pending points.
      const fresh = await reload();
      if (!fresh) return;
      status.replaceChildren(notice('success', h('p', {}, `Adjusted by ${entry.points} points: the balance is now ${fresh.balance}.`)));
    } catch (error) {
      status.replaceChildren(problemNotice(error, 'No adjustment was made'));
    }
  });
  return form;
}
