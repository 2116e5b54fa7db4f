/**
 * A reference for the proxy benchmark: a bare pass-through proxy on the same stack as
 * `carbon-trace proxy` (`node:http` in, a keep-alive `http.Agent` out, bytes piped) but without
 * carbon-trace, in a process of its own. What it costs is the hop on Node itself, not
 * carbon-trace. Prints its origin; serves until stdin closes.
 *
 *   node --import tsx bench/bare-proxy.ts http://127.0.0.1:<upstream port>
 */
import { once } from 'node:events';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

const upstream = new URL(process.argv[2] ?? 'http://127.0.0.1:8000');
const agent = new Agent({ keepAlive: true, scheduling: 'lifo' });
const server = createServer((req, res) => {
  const headers = { ...req.headers, host: upstream.host };
  delete headers.connection;
  const out = request({ agent, host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (up) => {
    const back = { ...up.headers };
    delete back.connection;
    delete back['keep-alive'];
    delete back['transfer-encoding'];
    res.writeHead(up.statusCode ?? 502, back);
    up.pipe(res);
  });
  out.on('error', () => res.destroy());
  req.pipe(out);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1');
await once(server, 'listening');
console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
process.stdin.resume();
process.stdin.on('end', () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
});
