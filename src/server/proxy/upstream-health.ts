import { connect } from 'node:net';
import type { UpstreamState } from './options';

/**
 * The failures that say the upstream cannot be reached (not that one answer went wrong).
 *
 * @example
 * ```ts
 * if (UNREACHABLE.has(code)) health.set(false, code);
 * ```
 */
export const UNREACHABLE: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Whether the proxy can reach its upstream: learned from every request, probed (a TCP connect)
 * at start and every `probeMs` while it is down; `onState` hears each change.
 *
 * @example
 * ```ts
 * const health = upstreamHealth(new URL('http://127.0.0.1:8000'), { onState: console.log });
 * health.reachable(); // false until the first probe or answer says otherwise
 * ```
 */
export function upstreamHealth(upstream: URL, options: { onState?: ((state: UpstreamState) => void) | undefined; probeMs?: number | undefined }) {
  const port = Number(upstream.port || (upstream.protocol === 'https:' ? 443 : 80));
  let reachable: boolean | undefined;
  let probeTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  const set = (up: boolean, reason?: string) => {
    if (up === reachable) return;
    reachable = up;
    try {
      options.onState?.(up ? { reachable: true } : { reachable: false, ...(reason ? { reason } : {}) });
    } catch {
      // A callback of the user's must not stop the proxy.
    }
    if (!up) scheduleProbe();
  };
  const scheduleProbe = () => {
    if (closed || probeTimer !== undefined) return;
    probeTimer = setTimeout(() => {
      probeTimer = undefined;
      probe();
    }, options.probeMs ?? 2_000);
    probeTimer.unref();
  };
  const probe = () => {
    if (closed) return;
    const socket = connect({ host: upstream.hostname.replace(/^\[|\]$/g, ''), port });
    socket.setTimeout(5_000);
    socket.once('connect', () => {
      socket.destroy();
      set(true);
    });
    const down = (reason: string) => {
      socket.destroy();
      if (reachable !== false) set(false, reason);
      else scheduleProbe();
    };
    socket.once('timeout', () => down('no answer within 5 s'));
    socket.once('error', (error: NodeJS.ErrnoException) => down(error.code ?? error.message));
  };
  probe();

  return {
    /** Whether it answered last time (`true` until a failure says otherwise). */
    reachable: () => reachable !== false,
    set,
    close() {
      closed = true;
      if (probeTimer) clearTimeout(probeTimer);
    },
  };
}

/**
 * What {@link upstreamHealth} gives.
 *
 * @example
 * ```ts
 * const health: UpstreamHealth = upstreamHealth(url, {});
 * ```
 */
export type UpstreamHealth = ReturnType<typeof upstreamHealth>;
