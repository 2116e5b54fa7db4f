import type { Pool } from 'undici';
import type { Wire } from '../wires/index';
import { HOP_HEADER } from './headers';

// A name is asked for again after this long (a server restarted with another model)…
const FRESH_MS = 10 * 60_000;
// …or after this long when none came (the upstream was down, or its list names several).
const RETRY_MS = 30_000;
const MAX_LIST_BYTES = 1024 * 1024;

/**
 * The model the upstream serves, for the wires whose requests name none (TGI, llama.cpp): read
 * from its model list (`/info`, `/v1/models`), in the background — a request asks for a refresh
 * as it starts and reads what is known when its books close, and never waits for it.
 *
 * @example
 * ```ts
 * const models = upstreamModels(pool, '', instanceId);
 * models.refresh(tgiWire); // at the request's start
 * models.nameFor(tgiWire); // at its close: 'bigscience/bloom-560m', or undefined
 * ```
 */
export function upstreamModels(pool: Pool, basePath: string, instanceId: string) {
  const known = new Map<string, { name: string | undefined; at: number; pending: boolean }>();

  async function fetchName(wire: Wire): Promise<string | undefined> {
    for (const list of wire.modelLists ?? []) {
      try {
        const { statusCode, body } = await pool.request({
          path: `${basePath}${list.path}`,
          method: 'GET',
          headers: { accept: 'application/json', [HOP_HEADER]: instanceId },
          headersTimeout: 5_000,
          bodyTimeout: 5_000,
        });
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of body) {
          size += (chunk as Buffer).length;
          if (size > MAX_LIST_BYTES) break;
          chunks.push(chunk as Buffer);
        }
        if (size > MAX_LIST_BYTES) {
          body.destroy();
          continue;
        }
        if (statusCode !== 200) continue;
        const name = list.pick(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        if (name !== undefined) return name;
      } catch {
        // Not this list: the next one, or none.
      }
    }
    return undefined;
  }

  return {
    /** Starts reading the wire's model list when it is not known, or known for a while; returns at once. */
    refresh(wire: Wire): void {
      if (wire.modelLists === undefined) return;
      const entry = known.get(wire.name);
      const now = Date.now();
      if (entry && (entry.pending || now - entry.at < (entry.name === undefined ? RETRY_MS : FRESH_MS))) return;
      const next = { name: entry?.name, at: now, pending: true };
      known.set(wire.name, next);
      void fetchName(wire).then((name) => {
        next.name = name;
        next.at = Date.now();
        next.pending = false;
      });
    },
    /** The model the upstream's list named last, if any. */
    nameFor: (wire: Wire): string | undefined => known.get(wire.name)?.name,
  };
}

/**
 * What {@link upstreamModels} gives.
 *
 * @example
 * ```ts
 * const models: UpstreamModels = upstreamModels(pool, '', instanceId);
 * ```
 */
export type UpstreamModels = ReturnType<typeof upstreamModels>;
