import type { IncomingMessage, ServerResponse } from 'node:http';
import { HOP_HEADER, hopsOf } from './headers';
import { routePath, type OwnRoutes } from './own-routes';
import { proxyError } from './respond';

// More carbon-trace proxies in a row than any deployment has: a loop through proxies that restarted.
const MAX_HOPS = 8;

/**
 * What a request that may go upstream is: its target as sent, and its path percent-decoded.
 *
 * @example
 * ```ts
 * const admitted: Admitted = { target: '/v1/chat/completions?x=1', path: '/v1/chat/completions' };
 * ```
 */
export type Admitted = { target: string; path: string };

/**
 * The request checks, before a request's body is read: its `Host` (DNS rebinding), its target
 * (origin-form only, no dot segments), the hops it has made (loops through carbon-trace
 * proxies), the proxy's own routes however spelled (answered here, with the admin token where
 * needed), its transfer coding and its declared size. A request that fails one is answered here
 * and gives `undefined`; one that passes may go upstream.
 *
 * @example
 * ```ts
 * const admit = admission({ hostAllowed, adminAllowed, instanceId, upstreamLabel, maxBodyBytes, own });
 * const admitted = admit(req, res);
 * if (admitted) forward(req, res, admitted);
 * ```
 */
export function admission(parts: {
  hostAllowed: (host: string) => boolean;
  adminAllowed: (req: IncomingMessage, target: string) => boolean;
  instanceId: string;
  upstreamLabel: string;
  maxBodyBytes: number;
  own: OwnRoutes;
}): (req: IncomingMessage, res: ServerResponse) => Admitted | undefined {
  const { own, maxBodyBytes } = parts;
  return (req, res) => {
    const target = req.url ?? '';
    // Before anything else: a name this proxy does not answer to is a page that rebound a DNS name to it.
    const host = req.headers.host;
    if (host !== undefined && !parts.hostAllowed(host)) {
      req.resume();
      proxyError(res, 403, `Host ${JSON.stringify(host.slice(0, 100))} is not one this proxy answers to: allow it with --allowed-host (allowedHosts)`, { connection: 'close' });
      return undefined;
    }
    // Only origin-form targets go upstream, joined onto its origin as a string: an absolute URL
    // (or anything else) could otherwise send the request, and its Authorization, elsewhere.
    if (!target.startsWith('/') || target.includes('#')) {
      req.resume();
      proxyError(res, 400, 'request target must be a path (origin-form, "/…", with no fragment)', { connection: 'close' });
      return undefined;
    }
    const query = target.indexOf('?');
    const rawPath = query < 0 ? target : target.slice(0, query);
    const path = decodedPath(rawPath);
    // Dot segments could climb out of the upstream's base path once the upstream normalises them.
    if (path === undefined || /(^|\/)\.\.?(\/|$)/.test(path)) {
      req.resume();
      proxyError(res, 400, 'request path must not hold "." or ".." segments', { connection: 'close' });
      return undefined;
    }
    const hops = hopsOf(req.headers[HOP_HEADER]);
    if (hops.includes(parts.instanceId) || hops.length >= MAX_HOPS) {
      req.resume();
      proxyError(
        res,
        508,
        hops.includes(parts.instanceId) ? `the upstream ${parts.upstreamLabel} sends requests back to this proxy, directly or through other carbon-trace proxies: a loop` : `the request has passed ${hops.length} carbon-trace proxies: a loop`,
      );
      return undefined;
    }
    // Our routes however the path is spelled (a trailing or doubled slash, capitals), and with any
    // method: a spelling that went upstream could reach the model server's own /metrics — which
    // vLLM serves under every path that begins with /metrics.
    const route = routePath(path).toLowerCase();
    if (own.has(route)) {
      req.resume();
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        proxyError(res, 405, `${route} is the proxy's own route: GET only`, { allow: 'GET, HEAD' });
        return undefined;
      }
      if (own.needsAdmin(route) && !parts.adminAllowed(req, target)) {
        proxyError(res, 401, 'this route needs the admin token: Authorization: Bearer <CARBON_TRACE_ADMIN_TOKEN>', { 'www-authenticate': 'Bearer' });
        return undefined;
      }
      own.answer(route, target, res).catch((error: unknown) => proxyError(res, 500, `carbon-trace: ${error instanceof Error ? error.message : String(error)}`));
      return undefined;
    }
    if (route.startsWith('/metrics')) {
      req.resume();
      proxyError(res, 404, 'the paths under /metrics are the proxy\'s: the model server\'s own metrics are not served through it (scrape it directly)');
      return undefined;
    }
    const coding = req.headers['transfer-encoding'];
    if (coding !== undefined && coding.trim().toLowerCase() !== 'chunked') {
      // Node takes the chunks apart but not gzip or the like: passing on the rest would change it (RFC 9112 §6.1).
      req.resume();
      proxyError(res, 501, `transfer coding ${JSON.stringify(coding.slice(0, 100))} is not supported: only chunked`, { connection: 'close' });
      return undefined;
    }
    const length = Number(req.headers['content-length']);
    if (Number.isFinite(length) && length > maxBodyBytes) {
      // Answered before reading past the limit; the connection cannot be reused.
      proxyError(res, 413, `request body of ${length} bytes is larger than the limit of ${maxBodyBytes} bytes`, { connection: 'close' });
      req.socket.end();
      return undefined;
    }
    return { target, path };
  };
}

/** The path percent-decoded as the upstream will read it; `undefined` when its encoding is broken. */
function decodedPath(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}
