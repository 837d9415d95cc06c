// What every console test needs: the real example server on a free port, and Chromium (the
// system's, through playwright-core: nothing is downloaded) with a fresh profile.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repository = join(here, '..', '..', '..');

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts the example server; `{base, rootToken, stop(), logs()}`. */
export async function startServer() {
  const binary = process.env.CONSOLE_SERVER_BIN ?? join(repository, 'target', 'debug', 'examples', 'server');
  const port = await freePort();
  const rootToken = `root-${randomBytes(16).toString('hex')}`;
  let output = '';
  // The memory store, whatever the environment says: CI exports DATABASE_URL for the
  // PostgreSQL tests, and a shared database would show every earlier run's programs here.
  const env = { ...process.env, RUST_LOG: 'info' };
  delete env.DATABASE_URL;
  const child = spawn(binary, ['--listen', `127.0.0.1:${port}`, '--admin-token', rootToken], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  const base = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`the server exited: ${output}`);
    try {
      const response = await fetch(`${base}/healthz`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (attempt > 100) throw new Error(`the server did not start: ${output}`);
    await new Promise((resolve) => { setTimeout(resolve, 100); });
  }
  return {
    base,
    rootToken,
    logs: () => output,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) { resolve(); return; }
      child.once('exit', resolve);
      child.kill('SIGTERM');
    }),
  };
}

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * Chromium with a fresh profile; `{context, page, problems, close()}`. `problems` collects
 * what must never happen: script errors, CSP or Trusted Types violations, requests to any
 * other origin, dialogs (an XSS's `alert`).
 */
export async function openBrowser(base, viewport = { width: 1280, height: 800 }) {
  const profile = mkdtempSync(join(tmpdir(), 'loyalty-console-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  const page = context.pages()[0] ?? await context.newPage();
  // Steps take a second or two, but the machine may be shared with builds: Playwright's
  // default of 30 s, also for navigation.
  page.setDefaultTimeout(30_000);
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    // The console's own API calls that fail on purpose (a wrong token, an invalid mapping)
    // are logged by Chromium as failed resources: those are expected.
    if (message.type() === 'error' && !/Failed to load resource: the server responded with a status of (4\d\d)/.test(text)) {
      problems.push(`console error: ${text}`);
    }
  });
  page.on('dialog', async (dialog) => {
    problems.push(`dialog: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(base) && !url.startsWith('data:') && !url.startsWith('blob:')) problems.push(`request to another origin: ${url}`);
  });
  return {
    context,
    page,
    problems,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** The example server and a Chromium page on it, for one test file. */
export async function openConsole(viewport) {
  const server = await startServer();
  const browser = await openBrowser(server.base, viewport);
  return { server, browser, page: browser.page };
}

export async function closeConsole({ server, browser } = {}) {
  await browser?.close();
  await server?.stop();
}

/** Signs in with `token` from the console's sign-in screen (without waiting for what follows). */
export async function signIn(page, base, token) {
  await page.goto(`${base}/console`);
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Fails the step on any script error, CSP violation, dialog or foreign request so far. */
export function assertNoProblems(browser, assert) {
  assert.deepEqual(browser.problems, []);
}

/** Runs axe-core (injected from its file) on the page; the serious and critical violations. */
export async function axeViolations(page) {
  const source = readFileSync(join(here, '..', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  // Injected through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(source);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`);
}

/** Saves docs/console/NAME.png when CONSOLE_SCREENSHOTS is set (the docs' pictures). */
export async function screenshot(page, name, { fullPage = false } = {}) {
  if (!process.env.CONSOLE_SCREENSHOTS) return;
  const directory = join(repository, 'docs', 'console');
  mkdirSync(directory, { recursive: true });
  await page.screenshot({ path: join(directory, `${name}.png`), fullPage });
}

/** An admin API call from the test itself (to set up or check what the console shows). */
export async function adminApi(base, token, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Sends events to a queryToken connector, as a sender would; the answer's results. */
export async function ingest(base, connectorId, token, body, { test = false } = {}) {
  const query = new URLSearchParams({ token });
  if (test) query.set('test', 'true');
  const response = await fetch(`${base}/v1/incoming/${connectorId}?${query}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`ingest: ${response.status} ${text}`);
  return JSON.parse(text).results;
}

export const HOSTILE = {
  script: '<script>window.__xss = 1</script>',
  image: '<img src=x onerror="window.__xss = 2">',
  link: 'javascript:window.__xss=3',
  long: 'A'.repeat(5000),
};

/** No hostile string ran or became markup. */
export async function assertNoInjection(page, assert) {
  const found = await page.evaluate(() => ({
    xss: window.__xss,
    images: document.querySelectorAll('img[src="x"]').length,
    scripts: Array.from(document.scripts).map((s) => s.src),
    links: Array.from(document.querySelectorAll('a[href]')).map((a) => a.getAttribute('href')).filter((href) => !/^(#|\/)/.test(href)),
  }));
  assert.equal(found.xss, undefined, 'a hostile string ran');
  assert.equal(found.images, 0, 'a hostile string became an image');
  assert.deepEqual(found.links, [], 'a link leads out of the console');
  assert.ok(found.scripts.every((src) => src.endsWith('/console/js/main.js')), `scripts: ${found.scripts}`);
}

/** The page is no wider than its viewport (nothing pushes it sideways); names what does. */
export async function assertNoHorizontalScroll(page, assert) {
  const found = await page.evaluate(() => {
    const width = window.innerWidth;
    const wide = Array.from(document.querySelectorAll('body *'))
      .filter((el) => el.getBoundingClientRect().right > width + 1)
      .slice(0, 3)
      .map((el) => `${el.tagName.toLowerCase()}.${el.className} (${Math.round(el.getBoundingClientRect().right)} px)`);
    return { scroll: document.documentElement.scrollWidth, width, wide };
  });
  assert.ok(found.scroll <= found.width + 1, `page is ${found.scroll} px wide in a ${found.width} px viewport: ${found.wide.join(', ')}`);
}
