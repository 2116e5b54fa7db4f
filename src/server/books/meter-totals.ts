import { addJoules, sumJoules } from '../meter/attribution';
import type { MeterStats } from '../meter/meter';
import { gramsOf, type ResolvedGridIntensity } from '../wires/trace-record';
import { ENERGY_COMPONENTS, type ComponentJoules } from '../types';

/**
 * Totals the meter of an earlier run of the proxy measured, carried over through the ledger's
 * snapshot.
 *
 * @example
 * ```ts
 * const carried: Carried = emptyCarried();
 * ```
 */
export type Carried = {
  since?: string;
  requests: number;
  requestsWithoutFigure: number;
  total: ComponentJoules;
  attributed: ComponentJoules;
  idle: ComponentJoules;
  unattributed: ComponentJoules;
  idleGrams: number;
  unattributedGrams: number;
};

/**
 * Nothing carried over.
 *
 * @example
 * ```ts
 * const carried = emptyCarried();
 * ```
 */
export const emptyCarried = (): Carried => ({ requests: 0, requestsWithoutFigure: 0, total: {}, attributed: {}, idle: {}, unattributed: {}, idleGrams: 0, unattributedGrams: 0 });

/**
 * The meter's books, with what an earlier run carried over added in.
 *
 * @example
 * ```ts
 * const c: CombinedStats = books.combine(meter.stats(), grid);
 * ```
 */
export type CombinedStats = Omit<MeterStats, 'byModel'> & { carriedOver: boolean };

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isJoules = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v) && Object.entries(v).every(([k, j]) => (ENERGY_COMPONENTS as readonly string[]).includes(k) && isCount(j));

/**
 * Whether a snapshot's carried totals are what the books write.
 *
 * @example
 * ```ts
 * if (isCarried(snapshot.carried)) Object.assign(carried, snapshot.carried);
 * ```
 */
export const isCarried = (c: Carried): boolean =>
  c !== null && typeof c === 'object' &&
  [c.requests, c.requestsWithoutFigure, c.idleGrams, c.unattributedGrams].every(isCount) &&
  [c.total, c.attributed, c.idle, c.unattributed].every(isJoules) &&
  (c.since === undefined || (typeof c.since === 'string' && !Number.isNaN(Date.parse(c.since))));

/**
 * The meter's side of the books: what earlier runs carried over, the requests booked in this run,
 * and the idle and unattributed emissions, which accrue at the grid intensity of their time (they
 * are in no request's row).
 *
 * @example
 * ```ts
 * const totals = createMeterTotals({ meterStats: () => meter.stats(), gridNow: () => grid.current() });
 * const c = totals.combine(meter.stats(), grid.current()!);
 * ```
 */
export function createMeterTotals(options: { meterStats?: () => MeterStats; gridNow?: () => ResolvedGridIntensity | undefined }) {
  const carried = emptyCarried();
  // Requests booked in this run: every view counts these (the meter does not see a request whose body never came).
  const booked = { requests: 0, withoutFigure: 0 };
  let idleGrams = 0;
  let unattributedGrams = 0;
  let idleSeen = 0;
  let unattributedSeen = 0;

  /** Accrues idle and unattributed emissions since the last look, at the grid of now. */
  function accrue(m: MeterStats, grid: ResolvedGridIntensity): void {
    if (m.idleJoules > idleSeen) idleGrams += gramsOf(m.idleJoules - idleSeen, grid);
    if (m.unattributedJoules > unattributedSeen) unattributedGrams += gramsOf(m.unattributedJoules - unattributedSeen, grid);
    idleSeen = m.idleJoules;
    unattributedSeen = m.unattributedJoules;
  }

  const accrueNow = () => {
    const m = options.meterStats?.();
    const g = options.gridNow?.();
    if (m && g) accrue(m, g);
    return m;
  };

  // Idle and unattributed emissions accrue at the grid of their time, not only when someone looks.
  const accrueTimer = setInterval(accrueNow, 1_000);
  accrueTimer.unref();

  return {
    /** What earlier runs left: restored into in place. */
    carried,

    /** Counts a request booked in this run. */
    book(totalJoules: number | undefined): void {
      booked.requests++;
      if (totalJoules === undefined) booked.withoutFigure++;
    },

    /** Counts a ledger row an earlier run wrote after its totals were last saved: its energy was measured then. */
    carryRow(joules: ComponentJoules, totalJoules: number | undefined): void {
      carried.requests++;
      if (totalJoules === undefined) carried.requestsWithoutFigure++;
      addJoules(carried.attributed, joules);
      addJoules(carried.total, joules);
    },

    /** This run's idle and unattributed energy (per component) and emissions so far, accrued to now; `undefined` without a meter. */
    runIdle(): { idle: ComponentJoules; unattributed: ComponentJoules; idleGrams: number; unattributedGrams: number } | undefined {
      const m = accrueNow();
      if (!m) return undefined;
      const idle: ComponentJoules = {};
      const unattributed: ComponentJoules = {};
      for (const component of ENERGY_COMPONENTS) {
        const c = m.byComponent?.[component];
        if (!c) continue;
        idle[component] = c.idleJoules;
        unattributed[component] = c.unattributedJoules;
      }
      return { idle, unattributed, idleGrams, unattributedGrams };
    },

    /** Idle and unattributed emissions, this run's and earlier runs'. */
    grams(): { idle: number; unattributed: number } {
      return { idle: idleGrams + carried.idleGrams, unattributed: unattributedGrams + carried.unattributedGrams };
    },

    /**
     * The totals to carry over, as of now: what earlier runs left, the rows this run put in the
     * ledger's file (`inFile`), and the meter's settled idle and unattributed energy.
     */
    toCarry(inFile: { rows: number; withoutFigure: number; joules: ComponentJoules }): Carried {
      const m = accrueNow();
      const now: Carried = { ...carried, total: { ...carried.total }, attributed: { ...carried.attributed }, idle: { ...carried.idle }, unattributed: { ...carried.unattributed } };
      // The requests in the file, and their energy — not the meter's attributed energy, nor rows
      // still waiting for a full disk: a restart reads those back from the file, once.
      now.requests += inFile.rows;
      now.requestsWithoutFigure += inFile.withoutFigure;
      addJoules(now.attributed, inFile.joules);
      addJoules(now.total, inFile.joules);
      if (m) {
        for (const component of ENERGY_COMPONENTS) {
          const c = m.byComponent[component];
          if (!c) continue;
          // What is in flight is left out: a request that finishes later brings its whole energy in
          // with its ledger row; one the crash cut has no row, and its energy is not carried over.
          const onFile = (now.total[component] ?? 0) + c.idleJoules + c.unattributedJoules;
          // The same settled energy as /metrics shows, summed in another order: float rounding may
          // put it a few ulps below what was shown, and a counter that restarts lower is a reset to
          // Prometheus. Within rounding, what was shown is kept; a real gap (rows still waiting for
          // the file) is not.
          const shown = (carried.total[component] ?? 0) + c.totalJoules - c.inFlightJoules;
          now.total[component] = shown > onFile && shown - onFile <= 1e-9 * shown ? shown : onFile;
          now.idle[component] = (now.idle[component] ?? 0) + c.idleJoules;
          now.unattributed[component] = (now.unattributed[component] ?? 0) + c.unattributedJoules;
        }
        now.since ??= m.since;
      }
      now.idleGrams += idleGrams;
      now.unattributedGrams += unattributedGrams;
      return now;
    },

    /** The meter's books with the earlier runs' added; accrues idle and unattributed emissions at the grid of now. */
    combine(m: MeterStats, grid: ResolvedGridIntensity): CombinedStats {
      accrue(m, grid);
      const byComponent: MeterStats['byComponent'] = {};
      for (const component of ENERGY_COMPONENTS) {
        const now = m.byComponent[component];
        const before = { total: carried.total[component], attributed: carried.attributed[component], idle: carried.idle[component], unattributed: carried.unattributed[component] };
        if (!now && before.total === undefined) continue;
        byComponent[component] = {
          totalJoules: (now?.totalJoules ?? 0) + (before.total ?? 0),
          attributedJoules: (now?.attributedJoules ?? 0) + (before.attributed ?? 0),
          inFlightJoules: now?.inFlightJoules ?? 0,
          idleJoules: (now?.idleJoules ?? 0) + (before.idle ?? 0),
          unattributedJoules: (now?.unattributedJoules ?? 0) + (before.unattributed ?? 0),
          measured: now?.measured ?? false,
          source: now?.source ?? 'an earlier run of the proxy',
        };
      }
      const { byModel: _ignored, ...rest } = m;
      void _ignored;
      return {
        ...rest,
        since: carried.since ?? m.since,
        totalJoules: m.totalJoules + sumJoules(carried.total),
        attributedJoules: m.attributedJoules + sumJoules(carried.attributed),
        idleJoules: m.idleJoules + sumJoules(carried.idle),
        unattributedJoules: m.unattributedJoules + sumJoules(carried.unattributed),
        requests: booked.requests + carried.requests,
        requestsWithoutFigure: booked.withoutFigure + carried.requestsWithoutFigure,
        byComponent,
        carriedOver: carried.since !== undefined,
      };
    },

    close(): void {
      clearInterval(accrueTimer);
    },
  };
}

/**
 * The meter's side of the books.
 *
 * @example
 * ```ts
 * const totals: MeterTotals = createMeterTotals({});
 * ```
 */
export type MeterTotals = ReturnType<typeof createMeterTotals>;
