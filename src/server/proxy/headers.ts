import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';

// Hop-by-hop headers (RFC 9110 §7.6.1): they belong to one connection and stop at the proxy, as
// do the headers a `Connection` header names.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/**
 * Each carbon-trace proxy a request passes adds its instance id to this header, so that one that
 * comes back through any number of them is a loop, not a request.
 *
 * @example
 * ```ts
 * hopsOf(req.headers[HOP_HEADER]);
 * ```
 */
export const HOP_HEADER = 'x-carbon-trace-proxy';

/**
 * The carbon-trace proxies a request has passed, as their `x-carbon-trace-proxy` header lists them.
 *
 * @example
 * ```ts
 * hopsOf('a, b'); // ['a', 'b']
 * ```
 */
export function hopsOf(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value.join(',') : value).split(',').map((id) => id.trim()).filter(Boolean);
}

/**
 * A header's first value.
 *
 * @example
 * ```ts
 * headerValue(['a', 'b']); // 'a'
 * ```
 */
export const headerValue = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

const NONE: ReadonlySet<string> = new Set();

function connectionNamed(headers: IncomingHttpHeaders): ReadonlySet<string> {
  const value = headers.connection;
  // keep-alive and close are hop-by-hop already: only other names need a set.
  if (!value || value === 'keep-alive' || value === 'close') return NONE;
  return new Set(String(value).split(',').map((token) => token.trim().toLowerCase()).filter(Boolean));
}

/**
 * The upstream's response headers as the client gets them: hop-by-hop ones dropped; for a changed
 * body, no length, digest or strong validator.
 *
 * @example
 * ```ts
 * res.writeHead(status, clientHeaders(upstreamHeaders, true));
 * ```
 */
export function clientHeaders(headers: IncomingHttpHeaders, changed: boolean): OutgoingHttpHeaders {
  const named = connectionNamed(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (changed && (name === 'content-length' || name === 'content-md5' || name === 'digest' || name === 'content-digest' || name === 'repr-digest')) continue;
    out[name] = value;
  }
  if (changed && typeof out.etag === 'string' && !out.etag.startsWith('W/')) out.etag = `W/${out.etag}`;
  return out;
}

/**
 * The request's headers as the upstream gets them: hop-by-hop ones dropped, `X-Forwarded-*`,
 * `X-Real-IP` and `Forwarded` saying who connected, this proxy added to the hops, and, when a
 * trace is to be spliced into the answer, `Accept-Encoding: identity`.
 *
 * @example
 * ```ts
 * pool.dispatch({ path, method: 'POST', headers: upstreamHeaders(req, true, instanceId), body }, handler);
 * ```
 */
export function upstreamHeaders(req: IncomingMessage, traced: boolean, instanceId: string): Record<string, string | string[]> {
  const named = connectionNamed(req.headers);
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    // The upstream's Host comes from its origin; 100-continue was answered here.
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || name === 'host' || name === 'expect') continue;
    headers[name] = value;
  }
  const client = req.socket.remoteAddress ?? '';
  const proto = 'encrypted' in req.socket ? 'https' : 'http';
  const prior = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${client}` : client;
  headers['x-forwarded-proto'] = proto;
  if (req.headers.host) headers['x-forwarded-host'] = req.headers.host;
  // The client's own X-Real-IP or Forwarded could claim any address: ours says who connected.
  headers['x-real-ip'] = client;
  const forwarded = `for=${client.includes(':') ? `"[${client}]"` : client};proto=${proto}${req.headers.host ? `;host="${req.headers.host.replace(/["\\]/g, '')}"` : ''}`;
  headers.forwarded = req.headers.forwarded ? `${req.headers.forwarded}, ${forwarded}` : forwarded;
  headers[HOP_HEADER] = [...hopsOf(req.headers[HOP_HEADER]), instanceId].join(', ');
  // The trace is spliced into the bytes: ask for them uncompressed.
  if (traced) headers['accept-encoding'] = 'identity';
  return headers;
}
