/**
 * A small load generator for the proxy benchmark, on raw keep-alive sockets: it writes one
 * prebuilt request and reads just enough of the answer to know where it ends, so that it costs
 * little beside the servers it measures (they share two cores), and times each request in
 * microseconds (autocannon's histogram counts whole milliseconds, too coarse for a 1 ms hop).
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

const HEADER_END = Buffer.from('\r\n\r\n');
const CHUNKED_END = Buffer.from('\r\n0\r\n\r\n');

/** A POST of `body` to `path`, as bytes. */
export function postRequest(host: string, path: string, body: string): Buffer {
  return Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

type Exchange = { sentAt: number; firstBodyAt?: number; traces: number };

/** One keep-alive connection that runs exchanges one after another. */
class Connection {
  private socket: Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private headerEnd = -1;
  private length = -1;
  private current: { exchange: Exchange; resolve: (e: Exchange) => void; reject: (e: Error) => void } | undefined;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', (e) => this.current?.reject(e));
    this.socket.on('close', () => this.current?.reject(new Error('connection closed')));
  }

  run(request: Buffer): Promise<Exchange> {
    return new Promise((resolve, reject) => {
      this.current = { exchange: { sentAt: performance.now(), traces: 0 }, resolve, reject };
      this.socket.write(request);
    });
  }

  private onData(data: Buffer): void {
    const current = this.current;
    if (!current) return;
    this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
    if (this.headerEnd < 0) {
      this.headerEnd = this.buffer.indexOf(HEADER_END);
      if (this.headerEnd < 0) return;
      const head = this.buffer.toString('latin1', 0, this.headerEnd);
      const match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      this.length = match ? Number(match[1]) : -1;
    }
    const bodyStart = this.headerEnd + 4;
    if (current.exchange.firstBodyAt === undefined && this.buffer.length > bodyStart) current.exchange.firstBodyAt = performance.now();
    const done = this.length >= 0 ? this.buffer.length >= bodyStart + this.length : this.buffer.indexOf(CHUNKED_END, bodyStart) >= 0;
    if (!done) return;
    let traces = 0;
    for (let at = this.buffer.indexOf('"x_carbon_trace"', bodyStart); at >= 0; at = this.buffer.indexOf('"x_carbon_trace"', at + 1)) traces++;
    current.exchange.traces = traces;
    this.buffer = Buffer.alloc(0);
    this.headerEnd = -1;
    this.current = undefined;
    current.resolve(current.exchange);
  }

  close(): void {
    this.socket.destroy();
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** `connections` clients sending `request` back to back for `durationMs`: requests/s, p50 and p99 latency (ms), errors, traces per response. */
export async function closedLoop(port: number, request: Buffer, connections: number, durationMs: number): Promise<{ rps: number; p50: number; p99: number; errors: number; traceCounts: Set<number> }> {
  const clients = Array.from({ length: connections }, () => new Connection(port));
  const latencies: number[] = [];
  const traceCounts = new Set<number>();
  let errors = 0;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < end) {
        try {
          const e = await client.run(request);
          latencies.push(performance.now() - e.sentAt);
          traceCounts.add(e.traces);
        } catch {
          errors++;
          return;
        }
      }
    }),
  );
  const elapsed = performance.now() - start;
  for (const c of clients) c.close();
  latencies.sort((a, b) => a - b);
  return { rps: (latencies.length / elapsed) * 1000, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors, traceCounts };
}

/** `streams` requests started together, each on its own connection: time to the first body byte of each (ms), and traces per response. */
export async function firstBytes(port: number, request: Buffer, streams: number): Promise<{ ttfb: number[]; traceCounts: Set<number> }> {
  const clients = Array.from({ length: streams }, () => new Connection(port));
  // Connected first, so the figure is the request's, not the TCP handshake's.
  await Promise.all(clients.map((c) => c.run(request)));
  const exchanges = await Promise.all(clients.map((c) => c.run(request)));
  for (const c of clients) c.close();
  return { ttfb: exchanges.map((e) => e.firstBodyAt! - e.sentAt).sort((a, b) => a - b), traceCounts: new Set(exchanges.map((e) => e.traces)) };
}

/** One stream from request to its last byte, `times` times on one connection: ms each. */
export async function wholeStreams(port: number, request: Buffer, times: number): Promise<number[]> {
  const client = new Connection(port);
  await client.run(request);
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const e = await client.run(request);
    out.push(performance.now() - e.sentAt);
  }
  client.close();
  return out;
}

/** `total` requests, taken in turn from `requests`, over `connections` connections. */
export async function cycle(port: number, requests: Buffer[], connections: number, total: number): Promise<void> {
  const clients = Array.from({ length: connections }, () => new Connection(port));
  let next = 0;
  await Promise.all(
    clients.map(async (client) => {
      while (next < total) await client.run(requests[next++ % requests.length]!);
    }),
  );
  for (const c of clients) c.close();
}
