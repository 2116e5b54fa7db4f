/**
 * Raw HTTP over a socket, for tests that send what a client library would tidy up: exactly these
 * bytes go out, and everything that comes back until the server closes is returned (send
 * `Connection: close`). No half-close: a client that sends FIN first has gone away, as Node sees it.
 */
import { connect } from 'node:net';

export function raw(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
    socket.write(request);
  });
}
