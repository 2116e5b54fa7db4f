/**
 * A reference for the proxy's benchmark: a bare pass-through proxy on the same stack as
 * `carbon-trace proxy` (fetch to the upstream, `toNodeListener` to serve) but without
 * carbon-trace, in a process of its own. What it costs is the hop itself, not carbon-trace.
 * Prints its base URL, serves until stdin closes.
 *
 *   node --import tsx bench/bare-proxy.ts http://127.0.0.1:<upstream port>
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toNodeListener } from '../src/server/index';

const upstream = new URL(process.argv[2] ?? 'http://127.0.0.1:8000');
const server = createServer(
  toNodeListener(async (request) => {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.delete('host');
    headers.delete('content-length');
    const response = await fetch(new URL(`${url.pathname}${url.search}`, upstream.origin), {
      method: request.method,
      headers,
      body: request.method === 'GET' || request.method === 'HEAD' ? null : request.body,
      signal: request.signal,
      duplex: 'half',
    } as RequestInit);
    const out = new Headers(response.headers);
    out.delete('content-length');
    out.delete('transfer-encoding');
    return new Response(response.body, { status: response.status, headers: out });
  }),
);
server.listen(0, '127.0.0.1');
await once(server, 'listening');
console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`);
process.stdin.resume();
process.stdin.on('end', () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
});
