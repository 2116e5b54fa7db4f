import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { extractCarbonMetrics, parseCarbonTrace, sumCarbonMetrics, type CarbonMetrics } from '../../src/index';
import { carbonTraceWireFields, plainWireValue, type CarbonTraceWireField } from '../../src/core/wire-schema';

// `npm run fuzz` raises this; CI keeps the default quick.
const NUM_RUNS = Number(process.env.CARBON_TRACE_FUZZ_RUNS ?? 500);

const WIRE_NAMES = [
  'emissions_g_co2', 'emissions_per_request_g', 'energy_consumed_wh', 'cpu_energy_wh', 'gpu_energy_wh',
  'ram_energy_wh', 'cpu_power_watts', 'gpu_power_watts', 'ram_power_watts', 'duration_seconds',
  'prompt_tokens', 'completion_tokens', 'session_total_kg_co2', 'session_requests', 'session_tokens',
  'measured', 'tracking_active', '__proto__', 'constructor',
];

// Values a broken server could send for any field.
const wireValue = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.double().map(String),
  fc.string(),
  fc.constantFrom(null, true, false, 'true', 1, 0, -0, Number.NaN, Number.POSITIVE_INFINITY, 1e308, -1e308, '1e400'),
  fc.jsonValue({ maxDepth: 3 }),
);

const traceLike = fc.dictionary(fc.constantFrom(...WIRE_NAMES), wireValue);
const anyInput = fc.oneof(traceLike, traceLike.map((t) => JSON.stringify(t)), fc.jsonValue(), fc.anything());

function assertSane(m: CarbonMetrics | undefined): void {
  if (m === undefined) return;
  for (const [key, value] of Object.entries(m)) {
    if (typeof value === 'number') {
      expect(Number.isFinite(value), key).toBe(true);
      expect(value, key).toBeGreaterThanOrEqual(0);
    }
    expect(value, key).not.toBeUndefined();
  }
  for (const value of Object.values(m.session ?? {})) {
    expect(Number.isFinite(value) && value >= 0).toBe(true);
  }
  expect(m.trackingMethod === 'codecarbon').toBe(m.measured);
  expect(JSON.parse(JSON.stringify(m))).toEqual(m);
}

describe('parseCarbonTrace properties', () => {
  it('never throws, never emits NaN/Infinity/negative, always JSON-safe', () => {
    fc.assert(
      fc.property(anyInput, (input) => {
        assertSane(parseCarbonTrace(input));
        assertSane(extractCarbonMetrics({ x_carbon_trace: input }));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('never touches Object.prototype', () => {
    fc.assert(
      fc.property(traceLike, (trace) => {
        parseCarbonTrace(JSON.parse(JSON.stringify(trace)));
        parseCarbonTrace(JSON.stringify({ __proto__: trace, constructor: { prototype: trace } }));
        expect(Object.keys(Object.prototype)).toEqual([]);
        expect(({} as Record<string, unknown>).emissions_g_co2).toBeUndefined();
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('keeps every valid non-negative number, converted by its unit', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e12, noNaN: true }), fc.double({ min: 0, max: 1e12, noNaN: true }), (wh, g) => {
        const m = parseCarbonTrace({ energy_consumed_wh: wh, emissions_g_co2: g })!;
        expect(m.energyKwh).toBe(wh / 1000);
        expect(m.gwpKgco2eq).toBe(g / 1000);
        expect(m.warnings).toEqual([]);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('the plain-value fast path agrees with the zod schema wherever it answers', () => {
    const names = Object.keys(carbonTraceWireFields) as CarbonTraceWireField[];
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.oneof(fc.double(), fc.integer(), fc.boolean(), fc.constantFrom(-0, 2 ** 53, 2 ** 53 + 2, 0.5)), (name, raw) => {
        const plain = plainWireValue(name, raw);
        const parsed = carbonTraceWireFields[name].safeParse(raw);
        if (plain !== undefined) {
          expect(parsed.success).toBe(true);
          expect(Object.is(plain, parsed.success ? (typeof parsed.data === 'number' ? parsed.data + 0 : parsed.data) : NaN)).toBe(true);
        } else if (typeof raw === 'number' || typeof raw === 'boolean') {
          // Declined values are exactly those the schema rejects or must coerce (numbers as flags).
          expect(!parsed.success || typeof raw !== typeof parsed.data).toBe(true);
        }
      }),
      { numRuns: NUM_RUNS * 4 },
    );
  });

  it('sums stay finite and equal to the per-field sums', () => {
    fc.assert(
      fc.property(fc.array(fc.option(traceLike, { nil: undefined }), { maxLength: 20 }), (traces) => {
        const metrics = traces.map((t) => (t === undefined ? undefined : parseCarbonTrace(t)));
        const totals = sumCarbonMetrics(metrics);
        expect(totals.calls).toBe(traces.length);
        // A call is traced when its trace gave a carbon figure; tokens or flags alone do not count.
        const figures = ['energyKwh', 'gwpKgco2eq', 'cpuEnergyKwh', 'gpuEnergyKwh', 'ramEnergyKwh', 'cpuPowerWatts', 'gpuPowerWatts', 'ramPowerWatts', 'durationSeconds'] as const;
        const traced = metrics.filter((m) => m !== undefined && figures.some((f) => m[f] !== undefined));
        expect(totals.tracedCalls).toBe(traced.length);
        // Summed in the same order; unknown (absent) when no call carried an energy, never 0.
        let energy: number | undefined;
        for (const m of metrics) if (m?.energyKwh !== undefined) energy = (energy ?? 0) + m.energyKwh;
        expect(totals.energyKwh).toBe(energy);
        expect(totals.callsWith.energyKwh).toBe(metrics.filter((m) => m?.energyKwh !== undefined).length);
        const numbers = [...Object.values(totals), ...Object.values(totals.callsWith), ...Object.values(totals.withDuration)].filter((v) => typeof v === 'number');
        for (const value of numbers) expect(Number.isFinite(value) && value >= 0).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
