import type { ServerResponse } from 'node:http';

/**
 * The requests in flight, for a shutdown that lets them finish and books them. Each request
 * opens an exchange, marks it dispatched once the upstream may be working on it, and settles it
 * when both its response and its books are done.
 *
 * @example
 * ```ts
 * const exchanges = createExchanges();
 * const settle = exchanges.open(res);
 * settle.dispatched();
 * settle(); // done
 * await exchanges.allSettled(10_000);
 * ```
 */
export function createExchanges() {
  const open = new Map<() => void, { res: ServerResponse; dispatched: boolean }>();
  const idleWaiters: Array<() => void> = [];
  return {
    open(res: ServerResponse) {
      let done = false;
      const entry = { res, dispatched: false };
      const settle = () => {
        if (done) return;
        done = true;
        open.delete(settle);
        if (open.size === 0) for (const wake of idleWaiters.splice(0)) wake();
      };
      open.set(settle, entry);
      return Object.assign(settle, { dispatched: () => void (entry.dispatched = true) });
    },
    /** Resolves when no request is in flight, or after `ms`. */
    allSettled(ms: number): Promise<void> {
      return new Promise<void>((resolve) => {
        if (open.size === 0) return resolve();
        const timer = setTimeout(resolve, ms);
        idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    /** Cuts the responses of the requests in flight (only those the upstream has not begun, with `undispatchedOnly`). */
    cut(undispatchedOnly: boolean): void {
      for (const { res, dispatched } of open.values()) if (!undispatchedOnly || !dispatched) res.destroy();
    },
  };
}

/**
 * What {@link createExchanges} gives.
 *
 * @example
 * ```ts
 * const exchanges: Exchanges = createExchanges();
 * ```
 */
export type Exchanges = ReturnType<typeof createExchanges>;

/**
 * The proxy's shutdown, in order: no new connection; a request still sending its body is cut (the
 * upstream has not begun); the ones the upstream works on may finish (a stream to its end) for
 * `graceMs`; the rest are cut, and booked as cut; then the connections, the upstream pool and the
 * books close.
 *
 * @example
 * ```ts
 * await shutDown({ server, exchanges, graceMs: 10_000, closeUpstream: () => pool.destroy(), closeBooks: () => books.close() });
 * ```
 */
export async function shutDown(parts: {
  server: import('node:http').Server;
  exchanges: Exchanges;
  graceMs: number;
  closeUpstream: () => Promise<unknown>;
  closeBooks: () => Promise<void>;
}): Promise<void> {
  const { server, exchanges } = parts;
  const stopped = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
  server.closeIdleConnections();
  exchanges.cut(true);
  await exchanges.allSettled(parts.graceMs);
  exchanges.cut(false);
  await exchanges.allSettled(2_000);
  server.closeAllConnections();
  await stopped;
  await parts.closeUpstream().catch(() => undefined);
  await parts.closeBooks();
}
