import { describe, expect, it } from 'vitest';
import { createCarbonTraceAccumulator, parseCarbonTrace, sumCarbonMetrics, type CarbonMetrics } from '../../src/index';

const a = parseCarbonTrace({ emissions_g_co2: 1, energy_consumed_wh: 2, gpu_energy_wh: 1.5, duration_seconds: 1, prompt_tokens: 10, completion_tokens: 5, measured: true })!;
const b = parseCarbonTrace({ emissions_g_co2: 3, energy_consumed_wh: 4, cpu_energy_wh: 0.5, ram_energy_wh: 0.25, duration_seconds: 2, completion_tokens: 7 })!;

describe('sumCarbonMetrics', () => {
  it('counts every call, traced or not, and measured ones apart', () => {
    const totals = sumCarbonMetrics([a, undefined, b, null, a]);
    expect(totals.calls).toBe(5);
    expect(totals.tracedCalls).toBe(3);
    expect(totals.measuredCalls).toBe(2);
    // Hand-computed: 1+3+1 g, 2+4+2 Wh, 1.5+1.5 Wh GPU, 0.5 Wh CPU, 0.25 Wh RAM.
    expect(totals.gwpKgco2eq).toBeCloseTo(0.005, 12);
    expect(totals.energyKwh).toBeCloseTo(0.008, 12);
    expect(totals.gpuEnergyKwh).toBeCloseTo(0.003, 12);
    expect(totals.cpuEnergyKwh).toBeCloseTo(0.0005, 12);
    expect(totals.ramEnergyKwh).toBeCloseTo(0.00025, 12);
    expect(totals.durationSeconds).toBe(4);
    expect(totals.promptTokens).toBe(20);
    expect(totals.completionTokens).toBe(17);
  });

  it('returns calls = 0 and no sums for nothing: an unknown total, not a zero', () => {
    const fields = { energyKwh: 0, gwpKgco2eq: 0, cpuEnergyKwh: 0, gpuEnergyKwh: 0, ramEnergyKwh: 0, durationSeconds: 0, promptTokens: 0, completionTokens: 0 };
    expect(sumCarbonMetrics([])).toStrictEqual({
      calls: 0, tracedCalls: 0, measuredCalls: 0,
      callsWith: fields,
      withDuration: { energyKwh: 0, gwpKgco2eq: 0, cpuEnergyKwh: 0, gpuEnergyKwh: 0, ramEnergyKwh: 0 },
    });
  });

  it('accepts any iterable', () => {
    function* gen() { yield a; yield undefined; }
    expect(sumCarbonMetrics(gen()).calls).toBe(2);
  });

  it('ignores corrupted numbers in metrics that came back from JSON', () => {
    const corrupted = { ...a, energyKwh: 'x', gwpKgco2eq: -1, durationSeconds: null } as unknown as CarbonMetrics;
    const totals = sumCarbonMetrics([corrupted]);
    expect(totals.energyKwh).toBeUndefined();
    expect(totals.gwpKgco2eq).toBeUndefined();
    expect(totals.durationSeconds).toBeUndefined();
    expect(totals.tracedCalls).toBe(1);
  });
});

describe('createCarbonTraceAccumulator', () => {
  it('returns undefined for a stream without a trace', () => {
    const acc = createCarbonTraceAccumulator();
    acc.add({ choices: [{ delta: { content: 'hi' } }] });
    acc.add('{"choices":[]}');
    acc.add(null);
    acc.add(undefined);
    expect(acc.hasTrace).toBe(false);
    expect(acc.build()).toBeUndefined();
  });

  it('takes the trace from the finish_reason chunk', () => {
    const acc = createCarbonTraceAccumulator();
    acc.add({ choices: [{ delta: { content: 'hi' } }] });
    acc.add({ choices: [{ delta: {}, finish_reason: 'stop' }], x_carbon_trace: { emissions_g_co2: 2 } });
    expect(acc.build()?.gwpKgco2eq).toBeCloseTo(0.002, 12);
  });

  it('takes the last trace when several chunks carry one, from objects or text', () => {
    const acc = createCarbonTraceAccumulator();
    acc.add({ x_carbon_trace: { emissions_g_co2: 2 } });
    expect(acc.build()?.gwpKgco2eq).toBeCloseTo(0.002, 12);
    acc.add('{"choices":[],"usage":{},"x_carbon_trace":{"emissions_g_co2":5}}');
    expect(acc.build()?.gwpKgco2eq).toBeCloseTo(0.005, 12);
  });

  it('reports a garbage trace as seen but without metrics', () => {
    const acc = createCarbonTraceAccumulator();
    acc.add({ x_carbon_trace: 'garbage' });
    expect(acc.hasTrace).toBe(true);
    expect(acc.build()).toBeUndefined();
  });
});

describe('a total over calls none of which was traced', () => {
  it('is unknown (—), not 0 Wh, and becomes a figure with the first traced call', async () => {
    const { formatEmissions, formatEnergy } = await import('../../src/index');
    const { addTotals, sumTotals } = await import('../../src/core/sum-carbon-metrics');
    const untraced = sumCarbonMetrics([undefined, undefined, null]);
    expect(untraced.calls).toBe(3);
    expect(formatEnergy(untraced.energyKwh)).toBe('—');
    expect(formatEmissions(untraced.gwpKgco2eq)).toBe('—');
    // Summing unknowns stays unknown; one known figure makes the sum that figure.
    expect(sumTotals([untraced, untraced]).energyKwh).toBeUndefined();
    const traced = sumCarbonMetrics([{ trackingMethod: 'codecarbon', measured: true, energyKwh: 0, warnings: [] }]);
    expect(traced.energyKwh).toBe(0); // a measured zero is a figure
    expect(formatEnergy(addTotals(sumTotals([untraced]), traced).energyKwh)).toBe('0 Wh');
    expect(JSON.parse(JSON.stringify(untraced))).toEqual(untraced);
  });
});
