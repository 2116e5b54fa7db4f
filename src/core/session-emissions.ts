import type { CarbonMetrics } from './types';

/**
 * Derives per-call emissions from Model Garden v1 snapshots, which carry only the server
 * session's running total (`session_total_kg_co2`) and its request count (`session_requests`).
 *
 * @example
 * ```ts
 * const sessions = createSessionEmissions();
 * const metrics = sessions.apply('garden.chat/llama', parseCarbonTrace(trace));
 * ```
 */
export type SessionEmissions = {
  /**
   * Records the snapshot `metrics` carries (if any) for the server `key`, and returns `metrics`
   * with `gwpKgco2eq` derived when the trace gave none and a share can be known. Metrics
   * without a snapshot come back as they are.
   */
  apply(key: string, metrics: CarbonMetrics | undefined): CarbonMetrics | undefined;
};

type Session = {
  /** The first snapshot seen of this session: anything older predates what we observed. */
  firstKg: number;
  firstRequests: number;
  /** The newest snapshot: increases are booked from here, so booked intervals never overlap. */
  lastKg: number;
  lastRequests: number;
};

// Servers and models seen; bounded so that unbounded model ids cannot grow memory.
const MAX_KEYS = 1_000;
// Sessions remembered per server: the current one and the few a late response may belong to.
const MAX_SESSIONS_PER_KEY = 4;

/**
 * Creates the per-adapter state that turns successive session snapshots of one server into
 * per-call emissions.
 *
 * A call's share is the increase of the session total since the previous response of that
 * session, divided by the increase in `session_requests` (other clients' requests take their
 * part), flagged in `warnings` as derived. What it books for a session never exceeds the
 * server's own total: each booking is at most the increase since the newest snapshot seen, so
 * booked intervals never overlap and add up to at most last − first seen. Three cases book
 * nothing, with a note: the first response seen of a session; a response no newer than one
 * already seen (responses overtake each other on the way); a snapshot that repeats a request
 * count. A drop below everything seen of the session (the server restarted) starts a new one.
 *
 * @example
 * ```ts
 * const sessions = createSessionEmissions();
 * sessions.apply('m', parseCarbonTrace({ session_total_kg_co2: 0.010, session_requests: 1 }));  // no emissions: first seen
 * sessions.apply('m', parseCarbonTrace({ session_total_kg_co2: 0.012, session_requests: 3 }))?.gwpKgco2eq; // 0.001
 * ```
 */
export function createSessionEmissions(): SessionEmissions {
  const byKey = new Map<string, Session[]>();

  function observe(key: string, totalKg: number, requests: number): { shareKg?: number; note: string } {
    let sessions = byKey.get(key);
    if (sessions === undefined) {
      if (byKey.size >= MAX_KEYS) byKey.delete(byKey.keys().next().value as string);
      byKey.set(key, (sessions = []));
    }
    if (sessions.some((s) => s.firstRequests <= requests && requests <= s.lastRequests && s.firstKg <= totalKg && totalKg <= s.lastKg)) {
      return { note: 'a snapshot no newer than one already seen (responses overtook each other): no share derived' };
    }
    // Of the sessions this snapshot could continue, the one with the highest total: booking from
    // there can never cover an increase another booking already covered.
    let from: Session | undefined;
    for (const s of sessions) {
      if (requests > s.lastRequests && totalKg >= s.lastKg && (from === undefined || s.lastKg > from.lastKg)) from = s;
    }
    if (from !== undefined) {
      const increaseKg = totalKg - from.lastKg;
      const newRequests = requests - from.lastRequests;
      from.lastKg = totalKg;
      from.lastRequests = requests;
      return {
        shareKg: increaseKg / newRequests,
        note: `gwpKgco2eq derived from the session total: +${increaseKg} kgCO2eq over ${newRequests} request${newRequests === 1 ? '' : 's'} since the previous response`,
      };
    }
    const same = sessions.find((s) => requests === s.lastRequests && totalKg >= s.lastKg);
    if (same !== undefined) {
      same.lastKg = totalKg;
      return { note: 'the session request count did not increase since the previous response: no share derived' };
    }
    sessions.push({ firstKg: totalKg, firstRequests: requests, lastKg: totalKg, lastRequests: requests });
    if (sessions.length > MAX_SESSIONS_PER_KEY) sessions.shift();
    return { note: 'first response seen of this server session: its share cannot be derived yet' };
  }

  return {
    apply(key, metrics) {
      const totalKg = metrics?.session?.totalKgco2eq;
      const requests = metrics?.session?.requests;
      if (metrics === undefined || typeof totalKg !== 'number' || typeof requests !== 'number') return metrics;
      const { shareKg, note } = observe(key, totalKg, requests);
      // A trace with its own per-call emissions keeps them; the snapshot only moves the marks.
      if (metrics.gwpKgco2eq !== undefined) return metrics;
      const derived: CarbonMetrics = { ...metrics, warnings: [...metrics.warnings, note] };
      if (shareKg !== undefined) derived.gwpKgco2eq = shareKg;
      return derived;
    },
  };
}
