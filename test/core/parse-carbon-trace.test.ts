import { describe, expect, it } from 'vitest';
import { extractCarbonMetrics, findCarbonTrace, parseCarbonTrace } from '../../src/index';

// The documented full record (seeds-clients docs).
const FULL_RECORD = {
  emissions_g_co2: 0.42,
  energy_consumed_wh: 1.5,
  cpu_energy_wh: 0.3,
  gpu_energy_wh: 1.1,
  ram_energy_wh: 0.1,
  duration_seconds: 2.5,
  cpu_power_watts: 45,
  gpu_power_watts: 250,
  ram_power_watts: 10,
  measured: true,
  tracking_active: true,
  completion_tokens: 128,
};

// Model Garden v2: per-request deltas, no component split.
const MODEL_GARDEN_V2 = {
  emissions_g_co2: 0.0123,
  energy_consumed_wh: 0.05,
  duration_seconds: 0.8,
  completion_tokens: 20,
  prompt_tokens: 12,
  measured: false,
};

// Model Garden v1: emissions_g_co2 is the whole session's emissions.
const MODEL_GARDEN_V1 = {
  emissions_g_co2: 250,
  emissions_per_request_g: 2.5,
  session_total_kg_co2: 0.25,
  session_requests: 100,
  session_tokens: 40000,
  tracking_active: true,
  measured: true,
};

describe('parseCarbonTrace — wire shapes seen in the wild', () => {
  it('normalises the documented full record to kWh / kgCO2eq / W / s', () => {
    const m = parseCarbonTrace(FULL_RECORD)!;
    expect(m.trackingMethod).toBe('codecarbon');
    expect(m.measured).toBe(true);
    expect(m.trackingActive).toBe(true);
    expect(m.gwpKgco2eq).toBeCloseTo(0.00042, 12);
    expect(m.energyKwh).toBeCloseTo(0.0015, 12);
    expect(m.cpuEnergyKwh).toBeCloseTo(0.0003, 12);
    expect(m.gpuEnergyKwh).toBeCloseTo(0.0011, 12);
    expect(m.ramEnergyKwh).toBeCloseTo(0.0001, 12);
    expect(m.cpuPowerWatts).toBe(45);
    expect(m.gpuPowerWatts).toBe(250);
    expect(m.ramPowerWatts).toBe(10);
    expect(m.durationSeconds).toBe(2.5);
    expect(m.completionTokens).toBe(128);
    expect(m.promptTokens).toBeUndefined();
    expect(m.session).toBeUndefined();
    expect(m.warnings).toEqual([]);
  });

  it('keeps Model Garden v2 deltas and leaves the absent split absent', () => {
    const m = parseCarbonTrace(MODEL_GARDEN_V2)!;
    expect(m).toEqual({
      trackingMethod: 'codecarbon_estimated',
      measured: false,
      gwpKgco2eq: 0.0123 / 1000,
      energyKwh: 0.05 / 1000,
      durationSeconds: 0.8,
      promptTokens: 12,
      completionTokens: 20,
      warnings: [],
    });
    expect('cpuEnergyKwh' in m).toBe(false);
    expect('gpuEnergyKwh' in m).toBe(false);
    expect('trackingActive' in m).toBe(false);
  });

  it('books no per-call emissions from a Model Garden v1 snapshot, and passes the session through', () => {
    const m = parseCarbonTrace(MODEL_GARDEN_V1)!;
    // 250 g is the session's running total and 2.5 g its running mean: neither is this call.
    expect('gwpKgco2eq' in m).toBe(false);
    expect(m.session).toEqual({ totalKgco2eq: 0.25, requests: 100, tokens: 40000 });
    expect(m.warnings.join('\n')).toMatch(/gwpKgco2eq not booked: emissions_g_co2 is the server session's running total/);
    expect(m.energyKwh).toBeUndefined();
  });

  it('books nothing for the first request of a v1 session either: its total includes the idle time since load', () => {
    const m = parseCarbonTrace({ ...MODEL_GARDEN_V1, emissions_g_co2: 2.5, emissions_per_request_g: 2.5, session_total_kg_co2: 0.0025, session_requests: 1 })!;
    expect('gwpKgco2eq' in m).toBe(false);
    expect(m.session).toEqual({ totalKgco2eq: 0.0025, requests: 1, tokens: 40000 });
  });

  it('keeps emissions_g_co2 beside session totals when it is a per-call figure (no running mean, not the total)', () => {
    const { emissions_per_request_g: _, ...rest } = MODEL_GARDEN_V1;
    const m = parseCarbonTrace({ ...rest, emissions_g_co2: 3 })!;
    expect(m.gwpKgco2eq).toBeCloseTo(0.003, 12);
    expect(m.warnings).toEqual([]);
  });

  it('treats emissions_g_co2 equal to the session total as the total, with or without the running mean', () => {
    const { emissions_per_request_g: _, ...rest } = MODEL_GARDEN_V1;
    const m = parseCarbonTrace(rest)!;
    expect('gwpKgco2eq' in m).toBe(false);
    expect(m.warnings.join('\n')).toMatch(/not booked/);
  });

  it('gives no metrics for a trace without any carbon figure, but zeros are figures', () => {
    expect(parseCarbonTrace({ measured: true })).toBeUndefined();
    expect(parseCarbonTrace({ prompt_tokens: 10, completion_tokens: 5 })).toBeUndefined();
    expect(parseCarbonTrace({ energy_consumed_wh: null, emissions_g_co2: 'n/a', duration_seconds: -1 })).toBeUndefined();
    expect(parseCarbonTrace({ emissions_g_co2: 0 })?.gwpKgco2eq).toBe(0);
    expect(parseCarbonTrace({ duration_seconds: 0, measured: true })?.durationSeconds).toBe(0);
  });

  it('derives energy from components when the total is missing, and says so', () => {
    const m = parseCarbonTrace({ cpu_energy_wh: 1, gpu_energy_wh: 2, emissions_g_co2: 1 })!;
    expect(m.energyKwh).toBeCloseTo(0.003, 12);
    expect(m.warnings.join('\n')).toMatch(/energyKwh derived/);
  });

  it('accepts the trace as a JSON string', () => {
    expect(parseCarbonTrace(JSON.stringify(MODEL_GARDEN_V2))).toEqual(parseCarbonTrace(MODEL_GARDEN_V2));
  });
});

describe('parseCarbonTrace — bad input', () => {
  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a boolean', true],
    ['an array', [FULL_RECORD]],
    ['an empty object', {}],
    ['only unknown fields', { foo: 1, bar: 'x' }],
    ['an empty string', ''],
    ['malformed JSON', '{"emissions_g_co2": 1'],
    ['a JSON array string', '[1,2]'],
    ['a JSON null string', 'null'],
  ])('returns undefined for %s', (_name, value) => {
    expect(parseCarbonTrace(value)).toBeUndefined();
  });

  it.each([
    ['null', null, /energy_consumed_wh dropped: not a number \(null\)/],
    ['NaN', Number.NaN, /energy_consumed_wh dropped/],
    ['Infinity', Number.POSITIVE_INFINITY, /energy_consumed_wh dropped/],
    ['-Infinity', Number.NEGATIVE_INFINITY, /energy_consumed_wh dropped/],
    ['a negative number', -1, /energy_consumed_wh dropped: negative/],
    ['a negative string', '-0.5', /energy_consumed_wh dropped: negative/],
    ['a word', 'lots', /energy_consumed_wh dropped: not a number/],
    ['hex', '0x10', /energy_consumed_wh dropped: not a number/],
    ['blank', '   ', /energy_consumed_wh dropped: not a number/],
    ['an overflowing string', '1e400', /energy_consumed_wh dropped/],
    ['a huge number', 1e300, /energy_consumed_wh dropped: implausibly large/],
    ['an object', { value: 1 }, /energy_consumed_wh dropped: not a number \(object\)/],
    ['an array', [1], /energy_consumed_wh dropped: not a number \(array\)/],
    ['a boolean', true, /energy_consumed_wh dropped/],
  ])('drops a field that is %s, with a warning, and keeps the rest', (_name, bad, warning) => {
    const m = parseCarbonTrace({ energy_consumed_wh: bad, emissions_g_co2: 0.5 })!;
    expect('energyKwh' in m).toBe(false);
    expect(m.gwpKgco2eq).toBeCloseTo(0.0005, 12);
    expect(m.warnings).toHaveLength(1);
    expect(m.warnings[0]).toMatch(warning);
  });

  it('coerces numeric strings and names them', () => {
    const m = parseCarbonTrace({ energy_consumed_wh: ' 2.5 ', emissions_g_co2: '1e-1', prompt_tokens: '7' })!;
    expect(m.energyKwh).toBeCloseTo(0.0025, 12);
    expect(m.gwpKgco2eq).toBeCloseTo(0.0001, 12);
    expect(m.promptTokens).toBe(7);
    expect(m.warnings).toHaveLength(3);
    expect(m.warnings.every((w) => w.includes('coerced'))).toBe(true);
  });

  it('drops fractional and negative token counts', () => {
    const m = parseCarbonTrace({ prompt_tokens: 1.5, completion_tokens: -3, emissions_g_co2: 1 })!;
    expect('promptTokens' in m).toBe(false);
    expect('completionTokens' in m).toBe(false);
    expect(m.warnings).toHaveLength(2);
  });

  it('normalises -0 to 0', () => {
    const m = parseCarbonTrace({ energy_consumed_wh: -0 })!;
    expect(Object.is(m.energyKwh, 0)).toBe(true);
  });

  it.each([
    [true, true],
    ['true', true],
    [1, true],
    [false, false],
    ['false', false],
    [0, false],
    ['yes', false],
    ['TRUE', false],
    [2, false],
    [null, false],
  ])('reads measured: %j as %s', (wire, expected) => {
    const m = parseCarbonTrace({ measured: wire, emissions_g_co2: 1 })!;
    expect(m.measured).toBe(expected);
    expect(m.trackingMethod).toBe(expected ? 'codecarbon' : 'codecarbon_estimated');
  });

  it('treats a missing measured flag as estimated', () => {
    expect(parseCarbonTrace({ emissions_g_co2: 1 })!.trackingMethod).toBe('codecarbon_estimated');
  });

  it('ignores __proto__ and constructor keys and leaves Object.prototype alone', () => {
    const hostile = JSON.parse(
      '{"__proto__":{"polluted":1,"emissions_g_co2":999},"constructor":{"prototype":{"polluted":2}},"energy_consumed_wh":1}',
    );
    const m = parseCarbonTrace(hostile)!;
    expect(m.energyKwh).toBeCloseTo(0.001, 12);
    expect('gwpKgco2eq' in m).toBe(false);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
  });

  it('does not read inherited fields', () => {
    const trace = Object.create({ emissions_g_co2: 5 }) as Record<string, unknown>;
    trace.energy_consumed_wh = 1;
    expect('gwpKgco2eq' in parseCarbonTrace(trace)!).toBe(false);
  });

  it('survives getters that throw and proxies', () => {
    const getter = { get emissions_g_co2(): number { throw new Error('boom'); } };
    expect(() => parseCarbonTrace(getter)).not.toThrow();
    const proxy = new Proxy({}, { has: () => { throw new Error('boom'); }, ownKeys: () => { throw new Error('boom'); }, getOwnPropertyDescriptor: () => { throw new Error('boom'); } });
    expect(parseCarbonTrace(proxy)).toBeUndefined();
  });

  it('handles a 2 MB trace and deep nesting quickly without throwing', () => {
    const big = { emissions_g_co2: 1, padding: 'x'.repeat(2 * 1024 * 1024) };
    expect(parseCarbonTrace(JSON.stringify(big))!.gwpKgco2eq).toBeCloseTo(0.001, 12);
    const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    expect(parseCarbonTrace(deep)).toBeUndefined();
    expect(parseCarbonTrace(`{"emissions_g_co2":1,"nested":${deep}}`)!.gwpKgco2eq).toBeCloseTo(0.001, 12);
  });

  it('produces output that survives a JSON round trip unchanged', () => {
    const m = parseCarbonTrace({ ...FULL_RECORD, ...MODEL_GARDEN_V1, prompt_tokens: '3', gpu_energy_wh: null })!;
    expect(JSON.parse(JSON.stringify(m))).toEqual(m);
  });
});

describe('extractCarbonMetrics and findCarbonTrace', () => {
  const body = { id: 'chatcmpl-1', object: 'chat.completion', choices: [], x_carbon_trace: MODEL_GARDEN_V2 };

  it('reads the trace of a whole body, object or text', () => {
    expect(extractCarbonMetrics(body)).toEqual(parseCarbonTrace(MODEL_GARDEN_V2));
    expect(extractCarbonMetrics(JSON.stringify(body))).toEqual(parseCarbonTrace(MODEL_GARDEN_V2));
  });

  it.each([
    ['no trace', { id: 'x', choices: [] }],
    ['null', null],
    ['an array', [body]],
    ['garbage text', 'data: [DONE]'],
    ['text mentioning the field that is not JSON', 'x_carbon_trace'],
    ['a trace nested below the top level', { choices: [{ x_carbon_trace: MODEL_GARDEN_V2 }] }],
  ])('returns undefined for %s', (_name, value) => {
    expect(extractCarbonMetrics(value)).toBeUndefined();
  });

  it('does not take an inherited x_carbon_trace', () => {
    const inherited = Object.create({ x_carbon_trace: MODEL_GARDEN_V2 });
    expect(findCarbonTrace(inherited)).toBeUndefined();
  });

  it('returns the raw trace without validating it', () => {
    expect(findCarbonTrace({ x_carbon_trace: 'garbage' })).toBe('garbage');
  });
});
