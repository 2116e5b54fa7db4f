import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequestListener } from '@remix-run/node-fetch-server';
import type { FetchHandler } from './with-carbon-trace';

/**
 * Serves a fetch handler — `withCarbonTrace(…)` — with `node:http`, through
 * `@remix-run/node-fetch-server`'s Node ↔ Web bridge (streaming, client aborts and backpressure
 * included). A handler that throws answers 502 with a one-line JSON error, and the line goes to
 * `onError` (default: `console.error`).
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { createEnergyMeter, toNodeListener, withCarbonTrace } from 'carbon-trace/server';
 * createServer(toNodeListener(withCarbonTrace(handler, { meter: createEnergyMeter() }))).listen(8787);
 * ```
 */
export function toNodeListener(
  handler: FetchHandler,
  options: { onError?: (message: string) => void } = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const report = options.onError ?? ((message: string) => console.error(`[carbon-trace] ${message}`));
  return createRequestListener(handler, {
    onError: (error: unknown) => {
      const message = error instanceof Error ? `${error.message}${error.cause instanceof Error ? ` (${error.cause.message})` : ''}` : String(error);
      report(message);
      return Response.json({ error: { message, type: 'proxy_error' } }, { status: 502 });
    },
  }) as (req: IncomingMessage, res: ServerResponse) => void;
}
