import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCarbonTrace } from '../../src/index';
import { createSessionEmissions } from '../../src/core/session-emissions';

const NUM_RUNS = Number(process.env.CARBON_TRACE_FUZZ_RUNS ?? 500);

/** What Model Garden v1 sends after `requests` requests with a session total of `totalKg`. */
function v1Snapshot(totalKg: number, requests: number) {
  return {
    emissions_g_co2: totalKg * 1000,
    emissions_per_request_g: (totalKg * 1000) / requests,
    session_total_kg_co2: totalKg,
    session_requests: requests,
    measured: true,
  };
}

describe('createSessionEmissions', () => {
  it("books each call's increase, not the running mean (the issue's 10 g idle + 100 × 0.1 g)", () => {
    const sessions = createSessionEmissions();
    let booked = 0;
    let totalKg = 0.01; // 10 g idle since the model was loaded
    for (let n = 1; n <= 100; n++) {
      totalKg += 0.0001; // each request: 0.1 g
      booked += sessions.apply('garden/llama', parseCarbonTrace(v1Snapshot(totalKg, n)))?.gwpKgco2eq ?? 0;
    }
    // The server's own total is 20 g; summing its running means gave 61.9 g. The first response
    // has no predecessor, so 99 calls book 0.1 g each.
    expect(totalKg).toBeCloseTo(0.02, 12);
    expect(booked).toBeCloseTo(99 * 0.0001, 12);
  });

  it('shares an increase with the requests of other clients', () => {
    const sessions = createSessionEmissions();
    sessions.apply('k', parseCarbonTrace(v1Snapshot(0.001, 10)));
    const m = sessions.apply('k', parseCarbonTrace(v1Snapshot(0.004, 13)))!;
    // +3 g over 3 requests, two of them someone else's: this call's share is 1 g.
    expect(m.gwpKgco2eq).toBeCloseTo(0.001, 12);
    expect(m.warnings.join('\n')).toMatch(/gwpKgco2eq derived from the session total: \+0\.003\d* kgCO2eq over 3 requests/);
  });

  it('the first response, a late one and a repeated count book nothing, each with a note', () => {
    const sessions = createSessionEmissions();
    const first = sessions.apply('k', parseCarbonTrace(v1Snapshot(0.002, 5)))!;
    expect(first.gwpKgco2eq).toBeUndefined();
    expect(first.warnings.at(-1)).toMatch(/first response seen of this server session/);
    expect(sessions.apply('k', parseCarbonTrace(v1Snapshot(0.004, 7)))!.gwpKgco2eq).toBeCloseTo(0.001, 12);
    const late = sessions.apply('k', parseCarbonTrace(v1Snapshot(0.003, 6)))!;
    expect(late.gwpKgco2eq).toBeUndefined();
    expect(late.warnings.at(-1)).toMatch(/no newer than one already seen/);
    const repeated = sessions.apply('k', parseCarbonTrace(v1Snapshot(0.0045, 7)))!;
    expect(repeated.gwpKgco2eq).toBeUndefined();
    expect(sessions.apply('k', parseCarbonTrace(v1Snapshot(0.0055, 8)))!.gwpKgco2eq).toBeCloseTo(0.001, 12);
  });

  it('a drop below everything seen starts a new session (the server restarted)', () => {
    const sessions = createSessionEmissions();
    sessions.apply('k', parseCarbonTrace(v1Snapshot(0.5, 500)));
    sessions.apply('k', parseCarbonTrace(v1Snapshot(0.6, 600)));
    expect(sessions.apply('k', parseCarbonTrace(v1Snapshot(0.001, 1)))!.gwpKgco2eq).toBeUndefined();
    expect(sessions.apply('k', parseCarbonTrace(v1Snapshot(0.003, 2)))!.gwpKgco2eq).toBeCloseTo(0.002, 12);
  });

  it('keeps servers apart, and leaves traces with their own per-call emissions alone', () => {
    const sessions = createSessionEmissions();
    sessions.apply('a', parseCarbonTrace(v1Snapshot(0.001, 1)));
    sessions.apply('b', parseCarbonTrace(v1Snapshot(0.5, 50)));
    expect(sessions.apply('a', parseCarbonTrace(v1Snapshot(0.002, 2)))!.gwpKgco2eq).toBeCloseTo(0.001, 12);
    const own = parseCarbonTrace({ emissions_g_co2: 0.3, session_total_kg_co2: 0.9, session_requests: 60 })!;
    expect(sessions.apply('b', own)).toBe(own);
    expect(sessions.apply('b', undefined)).toBeUndefined();
  });

  it('never books more for a server session than its own total, whatever the order responses arrive in', () => {
    // A server's life: idle time, other clients' requests, our requests (each answered with a
    // snapshot), restarts. Our responses may overtake each other by up to `window` places.
    const step = fc.oneof(
      fc.record({ kind: fc.constant('idle' as const), kg: fc.double({ min: 0, max: 1, noNaN: true }) }),
      fc.record({ kind: fc.constant('other' as const), kg: fc.double({ min: 0, max: 1, noNaN: true }) }),
      fc.record({ kind: fc.constant('ours' as const), kg: fc.double({ min: 0, max: 1, noNaN: true }) }),
      fc.constant({ kind: 'restart' as const, kg: 0 }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), fc.array(fc.nat(4), { maxLength: 60 }), (steps, jitter) => {
        const totals: number[] = [0];
        const requests: number[] = [0];
        const snapshots: Array<{ session: number; totalKg: number; requests: number; order: number }> = [];
        for (const s of steps) {
          const session = totals.length - 1;
          if (s.kind === 'restart') {
            totals.push(0);
            requests.push(0);
            continue;
          }
          totals[session]! += s.kg;
          if (s.kind === 'idle') continue;
          requests[session]!++;
          if (s.kind === 'ours') {
            const i = snapshots.length;
            snapshots.push({ session, totalKg: totals[session]!, requests: requests[session]!, order: i + (jitter[i] ?? 0) });
          }
        }
        const sessions = createSessionEmissions();
        const booked = totals.map(() => 0);
        for (const snap of [...snapshots].sort((a, b) => a.order - b.order)) {
          const share = sessions.apply('server', parseCarbonTrace(v1Snapshot(snap.totalKg, snap.requests)))?.gwpKgco2eq;
          if (share === undefined) continue;
          expect(Number.isFinite(share) && share >= 0).toBe(true);
          booked[snap.session]! += share;
        }
        booked.forEach((kg, session) => expect(kg).toBeLessThanOrEqual(totals[session]! * (1 + 1e-9) + 1e-12));
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
