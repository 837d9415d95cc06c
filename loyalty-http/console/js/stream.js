// The program's live stream (`GET /v1/programs/{pid}/stream`, server-sent events). The
// browser's EventSource cannot send an Authorization header, and the token must never be in
// a URL, so the stream is read with fetch() and its body parsed here. After a break it
// reconnects with `Last-Event-ID`, so the server sends what was missed.

import { session } from './api.js';

/**
 * Calls `onMessage({event, data, id})` for each message (data parsed as JSON) and
 * `onState('live' | 'reconnecting' | 'stopped', detail)` as the connection changes. Answers a
 * function that stops it.
 */
export function openStream(segments, query, { onMessage, onState = () => {} }) {
  const controller = new AbortController();
  let lastEventId = null;
  let stopped = false;
  let delay = 1000;

  const path = `/${segments.map(encodeURIComponent).join('/')}`;
  const params = new URLSearchParams(Object.entries(query ?? {}).filter(([, v]) => v));
  const url = params.size ? `${path}?${params}` : path;

  const dispatch = (block) => {
    let event = 'message';
    let id = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const name = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (name === 'event') event = value;
      else if (name === 'data') data.push(value);
      else if (name === 'id') id = value;
    }
    if (id !== null) lastEventId = id;
    if (!data.length) return;
    let parsed;
    try { parsed = JSON.parse(data.join('\n')); } catch { return; }
    onMessage({ event, data: parsed, id });
  };

  const connect = async () => {
    while (!stopped) {
      try {
        const headers = { Authorization: `Bearer ${session.token ?? ''}`, Accept: 'text/event-stream' };
        if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
        const response = await fetch(url, { headers, signal: controller.signal, cache: 'no-store', credentials: 'omit', redirect: 'error' });
        if (!response.ok) {
          let detail = `HTTP ${response.status}`;
          try { detail = (await response.json()).detail ?? detail; } catch { /* not a problem document */ }
          // A token refused, or a route the server does not have: retrying will not help.
          if (response.status === 401 || response.status === 403 || response.status === 404) {
            stopped = true;
            onState('stopped', detail);
            return;
          }
          throw new Error(detail);
        }
        onState('live');
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, '\n');
          let end = buffer.indexOf('\n\n');
          while (end >= 0) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf('\n\n');
          }
        }
        throw new Error('the server closed the stream');
      } catch (error) {
        if (stopped) return;
        onState('reconnecting', error.message);
        await new Promise((resolve) => { setTimeout(resolve, delay); });
        delay = Math.min(delay * 2, 15000);
      }
    }
  };
  connect();
  return () => {
    stopped = true;
    controller.abort();
  };
}
