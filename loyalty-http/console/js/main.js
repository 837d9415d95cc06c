// The console's shell: sign-in, the navigation, and a hash router that renders one screen at
// a time into <main>. Screens are modules exporting `render(ctx)`, which returns a node.

import { api, session, whenUnauthorized } from './api.js';
import { h, field, href, problemNotice } from './dom.js';
import * as programs from './screens/programs.js';
import * as connectors from './screens/connectors.js';
import * as playground from './screens/playground.js';
import * as rules from './screens/rules.js';
import * as testing from './screens/testing.js';
import * as events from './screens/events.js';
import * as members from './screens/members.js';
import * as replays from './screens/replays.js';

/** The screens of a program, in navigation order. */
const PROGRAM_SCREENS = [
  ['connectors', 'Connectors', connectors],
  ['playground', 'Mapping playground', playground],
  ['rules', 'Rules', rules],
  ['testing', 'Test events', testing],
  ['events', 'Event log', events],
  ['members', 'Members', members],
  ['replays', 'Replays', replays],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const signOut = document.getElementById('sign-out');

let renderSequence = 0;
let firstScreen = true;
let cleanups = [];
const programNames = new Map();

/** Stops what the current screen started (timers, the live stream). */
function leaveScreen() {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
}

function parseHash() {
  const [path, search = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const segments = path.split('/').filter(Boolean).map((s) => {
    try { return decodeURIComponent(s); } catch { return s; }
  });
  return { segments, query: Object.fromEntries(new URLSearchParams(search)) };
}

export function go(segments, query) {
  location.hash = href(segments, query);
}

function showSignIn(message) {
  nav.replaceChildren();
  who.textContent = '';
  signOut.hidden = true;
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const status = h('div', { 'aria-live': 'polite' }, message ? problemNotice({ message }) : null);
  const form = h('form', { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', {}, 'Use the root admin token or a program\'s admin token. It is kept for this tab only and sent only in the Authorization header.'),
    field('Admin token', input),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in')),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    try {
      const me = await api('GET', ['v1', 'me'], { token });
      session.save(token, me);
      input.value = '';
      if (me.role === 'root') go(['programs']);
      else go(['p', me.programId, 'connectors']);
      route();
    } catch (error) {
      status.replaceChildren(problemNotice(error, 'Sign-in failed'));
    }
  });
  main.replaceChildren(form);
  input.focus();
}

async function programName(programId) {
  if (!programNames.has(programId)) {
    try {
      const program = await api('GET', ['v1', 'programs', programId]);
      programNames.set(programId, program.name);
    } catch {
      return programId;
    }
  }
  return programNames.get(programId);
}

function renderNav(current, programId) {
  const me = session.who;
  const items = [];
  if (me?.role === 'root') items.push([['programs'], 'Programs', current === 'programs']);
  if (programId) {
    for (const [key, label] of PROGRAM_SCREENS) items.push([['p', programId, key], label, current === key]);
  }
  nav.replaceChildren(h('ul', {}, items.map(([segments, label, active]) =>
    h('li', {}, h('a', { href: href(segments), 'aria-current': active ? 'page' : null }, label)))));
}

async function route() {
  const me = session.who;
  if (!session.token || !me?.role) {
    showSignIn();
    return;
  }
  const { segments, query } = parseHash();
  let screen;
  let programId;
  let rest = [];
  let key;
  if (segments[0] === 'p' && segments[1]) {
    programId = segments[1];
    key = segments[2] ?? 'connectors';
    rest = segments.slice(3);
    screen = PROGRAM_SCREENS.find(([name]) => name === key)?.[2];
  } else if (segments[0] === 'programs' && me.role === 'root') {
    key = 'programs';
    screen = programs;
    rest = segments.slice(1);
  }
  if (!screen) {
    go(me.role === 'root' ? ['programs'] : ['p', me.programId, 'connectors']);
    return;
  }
  const sequence = ++renderSequence;
  leaveScreen();
  signOut.hidden = false;
  renderNav(key, programId);
  const role = me.role === 'root' ? 'Root' : 'Program admin';
  who.textContent = programId ? `${role} · program ${await programName(programId)}` : role;
  const ctx = {
    programId,
    rest,
    query,
    who: me,
    go,
    /** Runs when the user leaves the screen (timers, pending work). */
    onLeave: (fn) => cleanups.push(fn),
    /** True once the user has moved on: late answers are then dropped. */
    stale: () => sequence !== renderSequence,
    refresh: () => route(),
  };
  let node;
  try {
    node = await screen.render(ctx);
  } catch (error) {
    node = h('section', {}, h('h1', {}, 'Something went wrong'), problemNotice(error));
  }
  if (sequence !== renderSequence) return;
  main.replaceChildren(node);
  // Keyboard and screen-reader users land on the new screen, not on the link they left (but
  // a page just loaded starts from its top, the skip link first).
  if (!firstScreen && (document.activeElement?.closest('nav') || document.activeElement === document.body)) main.focus();
  firstScreen = false;
}

whenUnauthorized(() => {
  // Drops the screen that was loading: its answer would replace the sign-in form.
  renderSequence += 1;
  leaveScreen();
  session.clear();
  showSignIn('Your token is no longer accepted: sign in again.');
});

signOut.addEventListener('click', () => {
  renderSequence += 1;
  leaveScreen();
  session.clear();
  programNames.clear();
  history.replaceState(null, '', location.pathname);
  showSignIn();
});

// The skip link would otherwise be taken for a route.
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', route);
route();
