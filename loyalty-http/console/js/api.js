// The admin API as the console uses it. The token lives in sessionStorage (gone when the tab
// closes) and travels only in the Authorization header, never in a URL.

const TOKEN = 'loyalty.console.token';
const WHO = 'loyalty.console.who';

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  /** `{role, programId?}` from /v1/me. */
  get who() {
    try { return JSON.parse(sessionStorage.getItem(WHO) ?? 'null'); } catch { return null; }
  },
  save(token, who) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(WHO, JSON.stringify(who));
  },
  clear() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(WHO);
  },
};

/** A problem document from the API (or a network failure), with its `detail`. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
  }
}

/** Called when the token stops working (401), so the console can ask for another. */
let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

/**
 * `api('GET', ['v1', 'programs', pid], {query, body, token})`: path segments are encoded
 * one by one, so an id can never change the path.
 */
export async function api(method, segments, { query, body, token } = {}) {
  const path = `/${segments.map(encodeURIComponent).join('/')}`;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') params.set(key, value);
  }
  const url = params.size ? `${path}?${params}` : path;
  const headers = { Authorization: `Bearer ${token ?? session.token ?? ''}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch (error) {
    throw new ApiError(0, { detail: `the server did not answer (${error.message})` });
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  if (!response.ok) {
    if (response.status === 401 && token === undefined) onUnauthorized();
    throw new ApiError(response.status, data);
  }
  return data;
}

/** The program-scoped path `v1/programs/{pid}/...`. */
export function programPath(programId, ...rest) {
  return ['v1', 'programs', programId, ...rest];
}

/** Every page of a paginated list, up to `max` items. */
export async function pages(segments, query, max = 200) {
  const items = [];
  let cursor;
  do {
    const page = await api('GET', segments, { query: { ...query, cursor, limit: Math.min(100, max - items.length) } });
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && items.length < max);
  return items;
}
