import { Buffer } from 'node:buffer';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/**
 * Answers with a JSON body, sized.
 *
 * @example
 * ```ts
 * respondJson(res, 200, { ok: true });
 * ```
 */
export function respondJson(res: ServerResponse, status: number, body: unknown, extra: OutgoingHttpHeaders = {}): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, ...extra });
  res.end(bytes);
}

/**
 * The proxy's own error, in OpenAI's error shape (`type: 'proxy_error'`); a response already
 * begun is cut instead, since its status is gone.
 *
 * @example
 * ```ts
 * proxyError(res, 502, 'upstream unreachable: ECONNREFUSED');
 * ```
 */
export function proxyError(res: ServerResponse, status: number, message: string, extra: OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  respondJson(res, status, { error: { message, type: 'proxy_error' } }, extra);
}
