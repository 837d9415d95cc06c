// Earning rules: the list (by connector) and an editor with a condition builder whose tag and
// counter names are suggested from the connector's recent mapped events.

import { api, programPath } from '../api.js';
import { h, field, checkbox, select, href, notice, problemNotice, table, uid, jsonBlock } from '../dom.js';
import { connectorSelect } from './connectors.js';

const TEXT_OPS = [['eq', 'equals'], ['neq', 'does not equal'], ['in', 'is one of'], ['notIn', 'is none of'], ['contains', 'contains'], ['startsWith', 'starts with'], ['exists', 'exists'], ['notExists', 'does not exist']];
const NUMBER_OPS = [['eq', '='], ['neq', '≠'], ['lt', '<'], ['lte', '≤'], ['gt', '>'], ['gte', '≥'], ['between', 'between'], ['exists', 'exists'], ['notExists', 'does not exist']];
const PERIODS = [['day', 'day'], ['week', 'week'], ['month', 'month'], ['year', 'year'], ['lifetime', 'lifetime']];

export async function render(ctx) {
  const { items: connectors } = await api('GET', programPath(ctx.programId, 'connectors'));
  const [target] = ctx.rest;
  if (target === 'new') return editor(ctx, connectors, null);
  if (target) return editor(ctx, connectors, await api('GET', programPath(ctx.programId, 'rules', target)));
  return list(ctx, connectors);
}

export function pointsText(points) {
  if (points?.fixed !== undefined) return `${points.fixed} points`;
  if (points?.perCounter) return `${points.perCounter.points} per ${points.perCounter.per} of ${points.perCounter.counter}`;
  if (points?.perAmount) return `${points.perAmount.points} per ${points.perAmount.per} of the amount`;
  return JSON.stringify(points);
}

async function list(ctx, connectors) {
  const connectorId = ctx.query.connector ?? '';
  const { items } = await api('GET', programPath(ctx.programId, 'rules'), { query: { connectorId } });
  const names = new Map(connectors.map((c) => [c.id, c.name]));
  const choice = connectorSelect(connectors, connectorId, { allowAll: true, label: 'Show the rules of' });
  choice.control.addEventListener('change', () => ctx.go(['p', ctx.programId, 'rules'], { connector: choice.control.value }));
  const rows = items.map((r) => h('tr', {},
    h('td', {}, h('a', { href: href(['p', ctx.programId, 'rules', r.id]) }, r.name)),
    h('td', {}, names.get(r.connectorId) ?? r.connectorId),
    h('td', {}, pointsText(r.points)),
    h('td', {}, (r.limits ?? []).map((l) => `${l.count !== undefined ? `${l.count}×` : `${l.points} points`} per ${l.per}`).join(', ') || 'none'),
    h('td', { class: 'num' }, String(r.priority)),
    h('td', {}, r.stopOtherRules ? 'yes' : 'no')));
  return h('section', {},
    h('h1', {}, 'Earning rules'),
    h('div', { class: 'row' }, choice.node),
    h('div', { class: 'actions' }, connectors.length
      ? h('a', { class: 'button', href: href(['p', ctx.programId, 'rules', 'new'], { connector: connectorId }) }, 'New rule')
      : h('p', {}, 'Create a connector first: a rule belongs to one.')),
    items.length ? table(['Name', 'Connector', 'Points', 'Limits', 'Priority', 'Stops others'], rows) : h('p', {}, 'No rule yet.'));
}

/** Tag names (with values seen) and counter names from the connector's recent mapped events. */
async function vocabulary(ctx, connectorId) {
  const tags = new Map();
  const counters = new Set();
  if (!connectorId) return { tags, counters };
  const { items } = await api('GET', programPath(ctx.programId, 'events'), { query: { connectorId, limit: 100 } });
  for (const event of items) {
    const payload = event.mapped?.payload;
    for (const tag of Array.isArray(payload?.tags) ? payload.tags : []) {
      if (typeof tag?.name !== 'string') continue;
      if (!tags.has(tag.name)) tags.set(tag.name, new Set());
      if (tag.value !== undefined && tag.value !== null) tags.get(tag.name).add(String(tag.value));
    }
    for (const counter of Array.isArray(payload?.counters) ? payload.counters : []) {
      if (typeof counter?.name === 'string') counters.add(counter.name);
    }
  }
  return { tags, counters };
}

function datalist(values) {
  const id = uid('list');
  return { id, node: h('datalist', { id }, [...values].slice(0, 200).map((v) => h('option', { value: v }))) };
}

/** Whether the builder can show these conditions: one all/any of leaves. */
function flat(conditions) {
  if (!conditions || Object.keys(conditions).length === 0) return { mode: 'all', leaves: [] };
  const mode = conditions.all ? 'all' : conditions.any ? 'any' : null;
  const leaves = conditions[mode];
  if (!mode || !Array.isArray(leaves) || leaves.some((l) => l.all || l.any)) return null;
  return { mode, leaves };
}

/** One condition row of the builder; `read()` gives its JSON. */
function leafRow(leaf, vocab, purchase, onRemove) {
  const kindOf = leaf.tag !== undefined ? 'tag' : leaf.counter !== undefined ? 'counter' : leaf.field !== undefined ? 'field' : leaf.item !== undefined ? 'item' : 'tag';
  const kinds = [['tag', 'Tag'], ['counter', 'Counter']];
  if (purchase || kindOf === 'field' || kindOf === 'item') kinds.push(['field', 'Purchase field'], ['item', 'Some item']);
  const kind = select(kinds, kindOf);
  const tagNames = datalist(vocab.tags.keys());
  const counterNames = datalist(vocab.counters);
  const name = h('input', { type: 'text', autocomplete: 'off' });
  const fieldName = select([['amount', 'amount'], ['currency', 'currency'], ['itemCount', 'itemCount']], leaf.field ?? 'amount');
  const itemField = select([['sku', 'sku'], ['category', 'category'], ['name', 'name']], leaf.item ? Object.keys(leaf.item)[0] : 'sku');
  const op = h('select', {});
  const value = h('input', { type: 'text', autocomplete: 'off' });
  const min = h('input', { type: 'number', step: 'any' });
  const max = h('input', { type: 'number', step: 'any' });
  const valueList = datalist([]);
  const remove = h('button', { type: 'button', class: 'secondary' }, 'Remove condition');
  remove.addEventListener('click', onRemove);
  const box = h('div', { class: 'condition', role: 'group' });

  const isNumber = () => kind.value === 'counter' || (kind.value === 'field' && fieldName.value !== 'currency');
  // Every control is built once and only shown or hidden, so that focus and typing are never
  // interrupted by a rebuild.
  const nameField = field('Tag name', name);
  const fieldField = field('Field', fieldName);
  const itemFieldField = field('Item field', itemField);
  const opField = field('Operator', op);
  const minField = field('Minimum', min);
  const maxField = field('Maximum', max);
  const valueField = field('Value', value);
  box.setAttribute('aria-label', 'Condition');
  box.append(
    h('div', { class: 'row' }, field('Test on', kind), nameField, fieldField, itemFieldField, opField, minField, maxField, valueField),
    tagNames.node, counterNames.node, valueList.node, h('div', { class: 'actions' }, remove));
  const suggestValues = () => {
    const values = kind.value === 'tag' ? vocab.tags.get(name.value.trim()) ?? [] : [];
    valueList.node.replaceChildren(...[...values].slice(0, 200).map((v) => h('option', { value: v })));
  };
  const draw = () => {
    const ops = kind.value === 'item' ? [] : isNumber() ? NUMBER_OPS : TEXT_OPS;
    const current = op.value || leaf.op || 'eq';
    op.replaceChildren(...ops.map(([v, text]) => h('option', { value: v, selected: v === current }, text)));
    nameField.querySelector('label').textContent = kind.value === 'counter' ? 'Counter name' : 'Tag name';
    name.setAttribute('list', kind.value === 'counter' ? counterNames.id : tagNames.id);
    value.setAttribute('list', valueList.id);
    suggestValues();
    const chosen = op.value;
    const noValue = chosen === 'exists' || chosen === 'notExists';
    const between = chosen === 'between';
    const multiple = chosen === 'in' || chosen === 'notIn' || kind.value === 'item';
    nameField.hidden = !(kind.value === 'tag' || kind.value === 'counter');
    fieldField.hidden = kind.value !== 'field';
    itemFieldField.hidden = kind.value !== 'item';
    opField.hidden = kind.value === 'item';
    minField.hidden = !between;
    maxField.hidden = !between;
    valueField.hidden = between || noValue;
    valueField.querySelector('label').textContent = multiple ? 'Values (comma-separated)' : 'Value';
    value.type = isNumber() && !multiple ? 'number' : 'text';
    value.step = 'any';
  };
  name.value = leaf.tag ?? leaf.counter ?? '';
  if (leaf.values) value.value = leaf.values.join(', ');
  else if (leaf.item) value.value = [].concat(Object.values(leaf.item)[0]).join(', ');
  else if (leaf.value !== undefined) value.value = String(leaf.value);
  if (leaf.min !== undefined) min.value = leaf.min;
  if (leaf.max !== undefined) max.value = leaf.max;
  kind.addEventListener('change', () => { op.value = ''; draw(); });
  fieldName.addEventListener('change', draw);
  op.addEventListener('change', draw);
  name.addEventListener('input', suggestValues);
  draw();

  const read = () => {
    const split = () => value.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (kind.value === 'item') {
      const values = split();
      return { item: { [itemField.value]: values.length === 1 ? values[0] : values } };
    }
    const out = kind.value === 'field' ? { field: fieldName.value } : { [kind.value]: name.value.trim() };
    out.op = op.value;
    if (op.value === 'between') {
      out.min = Number(min.value);
      out.max = Number(max.value);
    } else if (op.value === 'in' || op.value === 'notIn') {
      out.values = split();
    } else if (op.value !== 'exists' && op.value !== 'notExists') {
      out.value = isNumber() ? Number(value.value) : value.value;
    }
    return out;
  };
  return { node: box, read };
}

function pointsEditor(points, purchase) {
  const kinds = [['fixed', 'A fixed number'], ['perCounter', 'Per unit of a counter']];
  if (purchase || points?.perAmount) kinds.push(['perAmount', 'Per unit of the amount']);
  const kind = select(kinds, points?.perCounter ? 'perCounter' : points?.perAmount ? 'perAmount' : 'fixed');
  const amount = h('input', { type: 'number', min: 1, step: 1, value: points?.fixed ?? points?.perCounter?.points ?? points?.perAmount?.points ?? 10 });
  const counter = h('input', { type: 'text', autocomplete: 'off', value: points?.perCounter?.counter ?? '' });
  const per = h('input', { type: 'number', min: 0, step: 'any', value: points?.perCounter?.per ?? points?.perAmount?.per ?? 1 });
  const box = h('fieldset', {});
  const draw = () => {
    const parts = [field('Points', kind), field(kind.value === 'fixed' ? 'Points awarded' : 'Points per unit', amount)];
    if (kind.value === 'perCounter') parts.push(field('Counter', counter));
    if (kind.value !== 'fixed') parts.push(field('Unit size', per));
    box.replaceChildren(h('legend', {}, 'Points'), h('div', { class: 'row' }, parts));
  };
  kind.addEventListener('change', () => { draw(); kind.focus(); });
  draw();
  const read = () => {
    if (kind.value === 'fixed') return { fixed: Number(amount.value) };
    if (kind.value === 'perCounter') return { perCounter: { counter: counter.value.trim(), points: Number(amount.value), per: Number(per.value) } };
    return { perAmount: { points: Number(amount.value), per: Number(per.value) } };
  };
  return { node: box, read, counter };
}

function limitsEditor(limits) {
  const rows = [];
  const list = h('div', {});
  const add = (limit = { count: 1, per: 'day' }) => {
    const what = select([['count', 'times awarded'], ['points', 'points awarded']], limit.points !== undefined ? 'points' : 'count');
    const number = h('input', { type: 'number', min: 1, step: 1, value: limit.count ?? limit.points ?? 1 });
    const per = select(PERIODS, limit.per ?? 'day');
    const remove = h('button', { type: 'button', class: 'secondary' }, 'Remove limit');
    const row = { read: () => ({ [what.value]: Number(number.value), per: per.value }) };
    const node = h('div', { class: 'row', role: 'group', 'aria-label': 'Limit' }, field('At most', number), field('Counting', what), field('Per', per), h('div', { class: 'field' }, remove));
    remove.addEventListener('click', () => { rows.splice(rows.indexOf(row), 1); node.remove(); addButton.focus(); });
    rows.push(row);
    list.append(node);
  };
  const addButton = h('button', { type: 'button', class: 'secondary' }, 'Add a limit');
  addButton.addEventListener('click', () => add());
  for (const limit of limits ?? []) add(limit);
  return {
    node: h('fieldset', {}, h('legend', {}, 'Limits per member'), list, h('div', { class: 'actions' }, addButton)),
    read: () => rows.map((r) => r.read()),
  };
}

async function editor(ctx, connectors, rule) {
  const creating = !rule;
  if (!connectors.length) return h('section', {}, h('h1', {}, 'New rule'), h('p', {}, 'Create a connector first.'));
  const connectorId = rule?.connectorId ?? (connectors.some((c) => c.id === ctx.query.connector) ? ctx.query.connector : connectors[0].id);
  const connector = connectors.find((c) => c.id === connectorId);
  const purchase = connector?.eventType === 'ecommerce.purchase';
  const vocab = await vocabulary(ctx, connectorId);
  const status = h('div', { 'aria-live': 'polite' });

  const name = h('input', { type: 'text', required: true, maxlength: 200, value: rule?.name ?? '', autocomplete: 'off' });
  const choice = connectorSelect(connectors, connectorId);
  if (creating) {
    choice.control.addEventListener('change', () => ctx.go(['p', ctx.programId, 'rules', 'new'], { connector: choice.control.value }));
  } else {
    choice.control.disabled = true;
  }
  const shape = flat(rule?.conditions);
  const mode = select([['all', 'all of these conditions hold'], ['any', 'any of these conditions holds']], shape?.mode ?? 'all');
  const leaves = [];
  const leafList = h('div', {});
  const addLeaf = (leaf = {}) => {
    const row = leafRow(leaf, vocab, purchase, () => { leaves.splice(leaves.indexOf(row), 1); row.node.remove(); addCondition.focus(); });
    leaves.push(row);
    leafList.append(row.node);
  };
  const addCondition = h('button', { type: 'button', class: 'secondary' }, 'Add a condition');
  addCondition.addEventListener('click', () => { addLeaf(); leaves.at(-1).node.querySelector('select')?.focus(); });
  // Nested conditions are kept as JSON: the builder shows one level.
  const conditionsJson = shape ? null : h('textarea', { class: 'code', spellcheck: 'false', value: JSON.stringify(rule.conditions, null, 2) });
  for (const leaf of shape?.leaves ?? []) addLeaf(leaf);
  const suggestions = vocab.tags.size || vocab.counters.size
    ? h('p', { class: 'hint' }, `Names seen in this connector's recent events: tags ${[...vocab.tags.keys()].join(', ') || 'none'}; counters ${[...vocab.counters].join(', ') || 'none'}.`)
    : h('p', { class: 'hint' }, 'No mapped event of this connector yet: send a test event to get name suggestions.');
  const conditions = h('fieldset', {}, h('legend', {}, 'Conditions'),
    conditionsJson
      ? field('Conditions (JSON; nested groups are edited here)', conditionsJson)
      : [field('Award when', mode), leafList, h('div', { class: 'actions' }, addCondition), suggestions]);

  const points = pointsEditor(rule?.points, purchase);
  points.counter.setAttribute('list', 'counter-names');
  const counterNames = h('datalist', { id: 'counter-names' }, [...vocab.counters].map((v) => h('option', { value: v })));
  const limits = limitsEditor(rule?.limits);
  const priority = h('input', { type: 'number', step: 1, value: rule?.priority ?? 0 });
  const pendingDays = h('input', { type: 'number', min: 0, max: 36600, step: 1, value: rule?.pendingDays ?? '' });
  const stop = checkbox('Stop other rules when this one awards', rule?.stopOtherRules ?? false);
  const activeFrom = h('input', { type: 'text', value: rule?.activeFrom ?? '', placeholder: '2026-01-01T00:00:00Z', autocomplete: 'off' });
  const activeUntil = h('input', { type: 'text', value: rule?.activeUntil ?? '', placeholder: 'empty: no end', autocomplete: 'off' });

  const form = h('form', { 'aria-label': creating ? 'New rule' : 'Edit rule' },
    h('div', { class: 'row' }, field('Name', name), choice.node),
    conditions,
    points.node, counterNames,
    limits.node,
    h('div', { class: 'row' },
      field('Priority', priority, 'Lower runs first.'),
      field('Pending days', pendingDays, 'Empty: spendable at once. Else its points become spendable this many days after their event.'),
      field('Active from', activeFrom, 'RFC 3339 time, empty for always.'),
      field('Active until', activeUntil, 'RFC 3339 time, empty for no end.')),
    stop.node,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, creating ? 'Create rule' : 'Save rule')),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let conditionsValue;
    try {
      conditionsValue = conditionsJson ? JSON.parse(conditionsJson.value) : (leaves.length ? { [mode.value]: leaves.map((l) => l.read()) } : null);
    } catch (error) {
      status.replaceChildren(notice('error', h('p', {}, `The conditions are not JSON: ${error.message}`)));
      return;
    }
    const body = {
      name: name.value,
      connectorId,
      conditions: conditionsValue,
      points: points.read(),
      limits: limits.read(),
      priority: Number(priority.value) || 0,
      pendingDays: pendingDays.value === '' ? undefined : Number(pendingDays.value),
      stopOtherRules: stop.input.checked,
      activeFrom: activeFrom.value.trim() || null,
      activeUntil: activeUntil.value.trim() || null,
    };
    try {
      const saved = creating
        ? await api('POST', programPath(ctx.programId, 'rules'), { body })
        : await api('PUT', programPath(ctx.programId, 'rules', rule.id), { body });
      if (creating) {
        ctx.go(['p', ctx.programId, 'rules', saved.id], { saved: 1 });
      } else {
        status.replaceChildren(notice('success', h('p', {}, 'Rule saved.')));
      }
    } catch (error) {
      status.replaceChildren(problemNotice(error, 'The rule was not saved'));
    }
  });

  const section = h('section', {},
    h('p', {}, h('a', { href: href(['p', ctx.programId, 'rules'], { connector: connectorId }) }, '← All rules')),
    ctx.query.saved ? notice('success', h('p', {}, 'Rule created.')) : null,
    h('h1', {}, creating ? 'New rule' : rule.name),
    connector?.eventType === 'ecommerce.refund'
      ? notice('secret', h('p', {}, 'A refund connector awards nothing: its events take back what the refunded purchase earned. Choose the purchases\' connector.'))
      : null,
    form);
  if (!creating) {
    const confirm = h('button', { type: 'button', class: 'danger', hidden: true }, `Yes, delete ${rule.name}`);
    const start = h('button', { type: 'button', class: 'secondary' }, 'Delete rule…');
    const deleted = h('div', { 'aria-live': 'polite' });
    start.addEventListener('click', () => { confirm.hidden = false; confirm.focus(); });
    confirm.addEventListener('click', async () => {
      try {
        await api('DELETE', programPath(ctx.programId, 'rules', rule.id));
        ctx.go(['p', ctx.programId, 'rules'], { connector: connectorId });
      } catch (error) {
        deleted.replaceChildren(problemNotice(error, 'The rule was not deleted'));
      }
    });
    section.append(h('h2', {}, 'As stored'), jsonBlock({ conditions: rule.conditions, points: rule.points, limits: rule.limits }, 'The rule as stored'),
      h('h2', {}, 'Delete'), h('div', { class: 'actions' }, start, confirm), deleted);
  }
  return section;
}
