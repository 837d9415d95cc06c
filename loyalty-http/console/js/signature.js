// A request to a connector's endpoint, authenticated with its own scheme: the same object
// drives the copyable curl command and the console's own test sends. Signatures are computed
// here with WebCrypto over the exact body that is shown and sent; the secret is typed in (or
// was just generated) and never leaves the page.

const encoder = new TextEncoder();

const HASHES = { sha1: 'SHA-1', sha256: 'SHA-256', sha512: 'SHA-512' };

async function hmac(algorithm, keyBytes, text) {
  if (!globalThis.crypto?.subtle) {
    throw new Error('signing needs WebCrypto, which browsers give only to secure pages: open the console over https, or on localhost or 127.0.0.1');
  }
  const key = await crypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: HASHES[algorithm] }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(text)));
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const base64 = (bytes) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const encode = (bytes, encoding) => (encoding === 'base64' ? base64(bytes) : hex(bytes));
const deliveryId = () => crypto.randomUUID();
const seconds = () => String(Math.floor(Date.now() / 1000));

/**
 * Every scheme the API accepts, with a label, what the admin supplies (a token, or a secret
 * to sign with) and its form fields beyond the credentials. The senders' own schemes take only
 * secrets, plus a tolerance for those that sign a timestamp.
 */
export const SCHEMES = [
  { type: 'queryToken', label: 'Token in the query string', credential: 'token' },
  { type: 'headerToken', label: 'Token in a header', credential: 'token' },
  { type: 'hubSignature', label: 'HMAC signature in a header (configurable)', credential: 'secret' },
  { type: 'standardWebhooks', label: 'Standard Webhooks (and Svix)', credential: 'secret', timestamped: true },
  { type: 'github', label: 'GitHub', credential: 'secret' },
  { type: 'shopify', label: 'Shopify', credential: 'secret' },
  { type: 'stripe', label: 'Stripe', credential: 'secret', timestamped: true },
  { type: 'slack', label: 'Slack', credential: 'secret', timestamped: true },
  { type: 'hubspot', label: 'HubSpot (v3)', credential: 'secret', timestamped: true },
  { type: 'typeform', label: 'Typeform', credential: 'secret' },
  { type: 'woocommerce', label: 'WooCommerce', credential: 'secret' },
  { type: 'segment', label: 'Segment', credential: 'secret' },
  { type: 'zendesk', label: 'Zendesk', credential: 'secret', timestamped: true },
];

export function scheme(type) {
  return SCHEMES.find((s) => s.type === type);
}

/** What the admin must supply for a scheme: `token`, `secret` (never stored), or null. */
export function credentialKind(auth) {
  return scheme(auth?.type)?.credential ?? null;
}

/** Where a connector's senders post: the URL HubSpot signs, else this server's own origin. */
function endpointUrl(connector, auth) {
  const base = auth.type === 'hubspot' && connector.publicBaseUrl ? connector.publicBaseUrl.replace(/\/+$/, '') : location.origin;
  return new URL(`${base}${connector.endpoint}`);
}

/**
 * `{url, headers: [[name, value]], body}` for `connector` (as the API returns it), or null
 * for a scheme this console does not know. `credential` is the token or one of the secrets.
 */
export async function buildRequest(connector, credential, body, { test = false } = {}) {
  const auth = connector.auth ?? {};
  const url = endpointUrl(connector, auth);
  if (test) url.searchParams.set('test', 'true');
  const headers = [['Content-Type', 'application/json']];
  const secret = credential ?? '';
  const key = encoder.encode(secret);
  const sign = (text, algorithm = 'sha256') => hmac(algorithm, key, text);
  switch (auth.type) {
    case 'queryToken':
      url.searchParams.set(auth.param || 'token', secret);
      break;
    case 'headerToken':
      headers.push([auth.header || 'X-Authorization', secret]);
      break;
    case 'hubSignature': {
      const algorithm = auth.algorithm || 'sha256';
      const prefix = auth.prefix ?? `${algorithm}=`;
      headers.push([auth.header || 'X-Hub-Signature-256', `${prefix}${encode(await sign(body, algorithm), auth.encoding)}`]);
      if (auth.deliveryIdHeader) headers.push([auth.deliveryIdHeader, deliveryId()]);
      break;
    }
    case 'standardWebhooks': {
      let standardKey;
      try {
        standardKey = fromBase64(secret.replace(/^whsec_/, ''));
      } catch {
        throw new Error('a Standard Webhooks secret is base64, optionally after whsec_');
      }
      const id = `msg_${deliveryId().replaceAll('-', '')}`;
      const timestamp = seconds();
      const signature = base64(await hmac('sha256', standardKey, `${id}.${timestamp}.${body}`));
      headers.push(['webhook-id', id], ['webhook-timestamp', timestamp], ['webhook-signature', `v1,${signature}`]);
      break;
    }
    case 'github':
      headers.push(['X-Hub-Signature-256', `sha256=${hex(await sign(body))}`], ['X-GitHub-Delivery', deliveryId()]);
      break;
    case 'shopify':
      headers.push(['X-Shopify-Hmac-Sha256', base64(await sign(body))], ['X-Shopify-Webhook-Id', deliveryId()]);
      break;
    case 'stripe': {
      const timestamp = seconds();
      headers.push(['Stripe-Signature', `t=${timestamp},v1=${hex(await sign(`${timestamp}.${body}`))}`]);
      break;
    }
    case 'slack': {
      const timestamp = seconds();
      headers.push(['X-Slack-Signature', `v0=${hex(await sign(`v0:${timestamp}:${body}`))}`], ['X-Slack-Request-Timestamp', timestamp]);
      break;
    }
    case 'hubspot': {
      const timestamp = String(Date.now());
      const signature = base64(await sign(`POST${url.toString()}${body}${timestamp}`));
      headers.push(['X-HubSpot-Signature-v3', signature], ['X-HubSpot-Request-Timestamp', timestamp]);
      break;
    }
    case 'typeform':
      headers.push(['Typeform-Signature', `sha256=${base64(await sign(body))}`]);
      break;
    case 'woocommerce':
      headers.push(['X-WC-Webhook-Signature', base64(await sign(body))], ['X-WC-Webhook-Delivery-ID', deliveryId()]);
      break;
    case 'segment':
      headers.push(['X-Signature', hex(await sign(body, 'sha1'))]);
      break;
    case 'zendesk': {
      const timestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      headers.push(
        ['X-Zendesk-Webhook-Signature', base64(await sign(`${timestamp}${body}`))],
        ['X-Zendesk-Webhook-Signature-Timestamp', timestamp],
        ['X-Zendesk-Webhook-Invocation-Id', deliveryId()],
      );
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
