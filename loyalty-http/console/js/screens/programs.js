// Programs (root token only): the list, and a form to create one; the new program's admin
// token is shown once, as the API returns it only then.

import { api } from '../api.js';
import { h, field, checkbox, href, notice, problemNotice, table, when, copyButton, labelCells } from '../dom.js';

const COLUMNS = ['Name', 'Id', 'Default identifier', 'Enrols unknown', 'Points expire', 'Created'];

export async function render() {
  const { items } = await api('GET', ['v1', 'programs']);
  const created = h('div', { 'aria-live': 'polite' });

  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: 200, autocomplete: 'off' });
  const kind = h('input', { type: 'text', name: 'defaultIdentifierKind', value: 'email', maxlength: 64, autocomplete: 'off' });
  const expiry = h('input', { type: 'number', name: 'pointsExpiry', min: 1, max: 36600, step: 1, autocomplete: 'off' });
  const enroll = checkbox('Enrol unknown members on their first event', true);
  const form = h('form', { 'aria-labelledby': 'new-program' },
    h('h2', { id: 'new-program' }, 'New program'),
    h('div', { class: 'row' },
      field('Name', name),
      field('Default identifier kind', kind, 'The kind of identifier "default" in events, e.g. email'),
      field('Points expire after (days)', expiry, 'Empty: points never expire.')),
    enroll.node,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create program')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const program = await api('POST', ['v1', 'programs'], {
        body: {
          name: name.value,
          defaultIdentifierKind: kind.value.trim() || undefined,
          enrollUnknownMembers: enroll.input.checked,
          pointsExpiry: expiry.value === '' ? null : { afterDays: Number(expiry.value) },
        },
      });
      const token = h('input', { type: 'text', readOnly: true, value: program.adminToken, class: 'mono', size: 60, 'aria-label': 'The new program\'s admin token' });
      created.replaceChildren(notice('secret',
        h('p', {}, 'Program ', h('strong', {}, program.name), ' created. Its admin token is shown only now: copy it somewhere safe.'),
        h('div', { class: 'row' }, token, copyButton('Copy token', () => program.adminToken)),
        h('p', {}, h('a', { href: href(['p', program.id, 'connectors']) }, 'Open the program'))));
      list.replaceChildren(...rows([...(await api('GET', ['v1', 'programs'])).items]));
      empty.hidden = true;
      form.reset();
      kind.value = 'email';
      enroll.input.checked = true;
      token.focus();
    } catch (error) {
      created.replaceChildren(problemNotice(error, 'The program was not created'));
    }
  });

  const rows = (programs) => programs.map((p) => labelCells(COLUMNS, h('tr', {},
    h('td', {}, h('a', { href: href(['p', p.id, 'connectors']) }, p.name)),
    h('td', { class: 'mono' }, p.id),
    h('td', {}, p.defaultIdentifierKind),
    h('td', {}, p.enrollUnknownMembers ? 'yes' : 'no'),
    h('td', {}, p.pointsExpiry ? `after ${p.pointsExpiry.afterDays} days` : 'never'),
    h('td', {}, when(p.createdAt)))));
  const list = h('tbody', {}, rows(items));
  const listTable = table(COLUMNS, []);
  listTable.querySelector('tbody').replaceWith(list);

  const empty = h('p', { hidden: items.length > 0 }, 'No program yet: create the first one below.');
  return h('section', {},
    h('h1', {}, 'Programs'),
    empty,
    listTable,
    form,
    created);
}
