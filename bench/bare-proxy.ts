/**
 * A reference for the proxy benchmark: a bare pass-through proxy on the same stack as
 * `carbon-trace proxy` (`node:http` in, undici's keep-alive `Pool` out, bytes piped) but without
 * carbon-trace, in a process of its own. What it costs is the hop on Node itself, not
 * carbon-trace. Prints its origin; serves until stdin closes.
 *
 *   node --import tsx bench/bare-proxy.ts http://127.0.0.1:<upstream port>
 */
import { createServer } from 'node:http';
import { serveUntilStdinEnds } from './serve';
import { Pool, type Dispatcher } from 'undici';

const upstream = new URL(process.argv[2] ?? 'http://127.0.0.1:8000');
const pool = new Pool(upstream.origin, { connections: null, pipelining: 1 });
const server = createServer((req, res) => {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && name !== 'connection' && name !== 'host' && name !== 'keep-alive') headers[name] = value;
  pool.dispatch(
    { path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req, headersTimeout: 0, bodyTimeout: 0 },
    {
      onRequestStart() {},
      onResponseStart(_c, status, responseHeaders) {
        const out = { ...responseHeaders };
        delete out.connection;
        delete out['keep-alive'];
        delete out['transfer-encoding'];
        res.writeHead(status, out);
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk)) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        res.destroy();
      },
    },
  );
});
await serveUntilStdinEnds(server);
