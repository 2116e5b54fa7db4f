/**
 * How the benchmark's helper servers run: listen on a free loopback port, print their origin (the
 * benchmark reads it), and stop when the benchmark closes their stdin.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function serveUntilStdinEnds(server: Server): Promise<void> {
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
}
