// A request to a connector's endpoint, authenticated with its own scheme: the same object
// drives the copyable curl command and the console's own test sends. Signatures are computed
// here with WebCrypto over the exact body that is shown and sent.

const encoder = new TextEncoder();

async function hmacSha256(keyBytes, text) {
  const key = await crypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(text)));
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const base64 = (bytes) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** What the admin must supply for a scheme: a token or a secret (never stored). */
export function credentialKind(auth) {
  switch (auth?.type) {
    case 'queryToken':
    case 'headerToken':
      return 'token';
    case 'hubSignature':
    case 'standardWebhooks':
      return 'secret';
    default:
      return null;
  }
}

/**
 * `{url, headers: [[name, value]], body}` for `connector` (as the API returns it), or null
 * for a scheme the console cannot sign. `credential` is the token or one of the secrets.
 */
export async function buildRequest(connector, credential, body, { test = false } = {}) {
  const auth = connector.auth ?? {};
  const url = new URL(connector.endpoint, location.origin);
  if (test) url.searchParams.set('test', 'true');
  const headers = [['Content-Type', 'application/json']];
  const secret = credential ?? '';
  switch (auth.type) {
    case 'queryToken':
      url.searchParams.set(auth.param || 'token', secret);
      break;
    case 'headerToken':
      headers.push([auth.header || 'X-Authorization', secret]);
      break;
    case 'hubSignature':
      headers.push([auth.header || 'X-Hub-Signature-256', `sha256=${hex(await hmacSha256(encoder.encode(secret), body))}`]);
      break;
    case 'standardWebhooks': {
      let key;
      try {
        key = fromBase64(secret.replace(/^whsec_/, ''));
      } catch {
        throw new Error('a Standard Webhooks secret is base64, optionally after whsec_');
      }
      const id = `msg_${crypto.randomUUID().replaceAll('-', '')}`;
      const timestamp = String(Math.floor(Date.now() / 1000));
      const signature = base64(await hmacSha256(key, `${id}.${timestamp}.${body}`));
      headers.push(['webhook-id', id], ['webhook-timestamp', timestamp], ['webhook-signature', `v1,${signature}`]);
      break;
    }
    default:
      return null;
  }
  return { url: url.toString(), headers, body };
}

/** POSIX shell single quoting: nothing inside is interpreted. */
const quote = (text) => `'${String(text).replaceAll("'", "'\\''")}'`;

export function curlCommand(request) {
  const lines = [`curl -sS -X POST ${quote(request.url)}`];
  for (const [name, value] of request.headers) lines.push(`  -H ${quote(`${name}: ${value}`)}`);
  lines.push(`  --data-binary ${quote(request.body)}`);
  return lines.join(' \\\n');
}

/** Sends the request from the browser; answers `{status, data}`. */
export async function send(request) {
  const response = await fetch(request.url, {
    method: 'POST',
    headers: request.headers,
    body: request.body,
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await response.text();
  let data;
  try { data = JSON.parse(text); } catch { data = text; }
  return { status: response.status, data };
}
