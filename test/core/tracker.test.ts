import { describe, expect, it, vi } from 'vitest';
import { boampsSchema, boampsValidator } from '../fixtures/boamps-validator';
import { CarbonTracker, EMISSIONS_CSV_COLUMNS, OVERFLOW_MODEL, parseCarbonTrace, UNKNOWN_MODEL, type BoAmpsReportOptions } from '../../src/index';

const measured = parseCarbonTrace({ emissions_g_co2: 2, energy_consumed_wh: 8, cpu_energy_wh: 2, gpu_energy_wh: 5, ram_energy_wh: 1, duration_seconds: 4, prompt_tokens: 100, completion_tokens: 50, measured: true })!;
const estimated = parseCarbonTrace({ emissions_g_co2: 1, energy_consumed_wh: 3, cpu_energy_wh: 3, duration_seconds: 2, prompt_tokens: 10, completion_tokens: 20, measured: false })!;

function sampleTracker(): CarbonTracker {
  const tracker = new CarbonTracker();
  tracker.record(measured, { provider: 'garden.chat', modelId: 'llama' });
  tracker.record(measured, { provider: 'garden.chat', modelId: 'llama' });
  tracker.record(undefined, { provider: 'garden.chat', modelId: 'llama' });
  tracker.record(estimated, { modelId: 'mistral' });
  return tracker;
}

describe('CarbonTracker', () => {
  it('totals per kind of call add up to every call; no kind (or a bad one) is a generation', () => {
    const tracker = new CarbonTracker();
    tracker.record(measured, { modelId: 'llama', kind: 'chat' });
    tracker.record(measured, { modelId: 'llama' });
    tracker.record(measured, { modelId: 'bge', kind: 'embedding' });
    tracker.record(undefined, { modelId: 'bge', kind: 'embedding' });
    tracker.record(estimated, { modelId: 'rr', kind: 'rerank' });
    tracker.record(measured, { modelId: 'x', kind: '__proto__' as never });
    const byKind = tracker.byKind();
    expect(Object.getPrototypeOf(byKind)).toBeNull();
    expect(Object.keys(byKind).sort()).toEqual(['chat', 'embedding', 'rerank']);
    expect(byKind.chat).toMatchObject({ calls: 3, tracedCalls: 3 });
    expect(byKind.embedding).toMatchObject({ calls: 2, tracedCalls: 1 });
    expect(byKind.rerank).toMatchObject({ calls: 1, tracedCalls: 1 });
    expect(byKind.chat!.calls + byKind.embedding!.calls + byKind.rerank!.calls).toBe(tracker.totals().calls);
    const csv = tracker.toEmissionsCsv({ now: new Date(0) }).trim().split('\n');
    const kinds = Object.fromEntries(csv.slice(1).map((line) => [line.split(',')[2], line.split(',').at(-1)]));
    expect(kinds).toEqual({ llama: 'chat', bge: 'embedding', rr: 'rerank', x: 'chat' });
    tracker.reset();
    expect(tracker.byKind()).toEqual({});
  });

  it('totals and per-model sums match hand-computed values', () => {
    const tracker = sampleTracker();
    // All: 2+2+1 g, 8+8+3 Wh, 4+4+2 s; llama: 2 traced of 3 calls.
    expect(tracker.totals()).toMatchObject({ calls: 4, tracedCalls: 3, measuredCalls: 2, promptTokens: 210, completionTokens: 120, durationSeconds: 10 });
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo(0.005, 12);
    expect(tracker.totals().energyKwh).toBeCloseTo(0.019, 12);
    const byModel = tracker.byModel();
    expect(Object.keys(byModel).sort()).toEqual(['llama', 'mistral']);
    expect(byModel.llama).toMatchObject({ calls: 3, tracedCalls: 2, measuredCalls: 2 });
    expect(byModel.llama!.gpuEnergyKwh).toBeCloseTo(0.01, 12);
    expect(byModel.mistral!.cpuEnergyKwh).toBeCloseTo(0.003, 12);
    expect(tracker.providersOf('llama')).toEqual(['garden.chat']);
  });

  it('keeps measured and estimated apart', () => {
    const byMethod = sampleTracker().byTrackingMethod();
    expect(byMethod.codecarbon).toMatchObject({ calls: 2, measuredCalls: 2 });
    expect(byMethod.codecarbon!.energyKwh).toBeCloseTo(0.016, 12);
    expect(byMethod.codecarbon_estimated).toMatchObject({ calls: 1, measuredCalls: 0 });
    expect(byMethod.codecarbon_estimated!.energyKwh).toBeCloseTo(0.003, 12);
  });

  it('files calls without a model under "unknown", and any model id is a safe key', () => {
    const tracker = new CarbonTracker();
    tracker.record(measured);
    tracker.record(measured, { modelId: '__proto__' });
    tracker.record(measured, { modelId: 'constructor' });
    const byModel = tracker.byModel();
    expect(byModel[UNKNOWN_MODEL]!.calls).toBe(1);
    expect(byModel['__proto__']!.calls).toBe(1);
    expect(byModel['constructor' as string]!.calls).toBe(1);
    expect(Object.getPrototypeOf(byModel)).toBeNull();
    expect(({} as Record<string, unknown>).calls).toBeUndefined();
  });

  it('memory grows with models, not calls', () => {
    const tracker = new CarbonTracker();
    for (let i = 0; i < 30_000; i++) tracker.record(i % 4 === 0 ? undefined : measured, { modelId: `m${i % 3}` });
    expect(Object.keys(tracker.byModel())).toHaveLength(3);
    expect(tracker.totals().calls).toBe(30_000);
    expect(tracker.totals().tracedCalls).toBe(22_500);
  });

  it('returns copies, and reset forgets everything', () => {
    const tracker = sampleTracker();
    tracker.totals().calls = 999;
    tracker.byModel().llama!.calls = 999;
    expect(tracker.totals().calls).toBe(4);
    expect(tracker.byModel().llama!.calls).toBe(3);
    tracker.reset();
    expect(tracker.totals().calls).toBe(0);
    expect(tracker.byModel()).toEqual({});
    expect(tracker.byTrackingMethod()).toEqual({});
  });
});

describe('tracker.toEmissionsCsv', () => {
  function parseCsv(text: string): string[][] {
    const rows: string[][] = [];
    for (const line of text.trimEnd().split('\n')) {
      const cells: string[] = [];
      for (const m of line.matchAll(/("((?:[^"]|"")*)"|[^,]*)(,|$)/g)) {
        cells.push(m[2] !== undefined ? m[2].replace(/""/g, '"') : m[1]!);
        if (m[3] === '') break;
      }
      rows.push(cells);
    }
    return rows;
  }

  it("has CodeCarbon's columns first, in its units", () => {
    const [header, ...rows] = parseCsv(sampleTracker().toEmissionsCsv({ projectName: 'bot', now: new Date('2026-01-02T03:04:05Z') }));
    expect(header!.slice(0, EMISSIONS_CSV_COLUMNS.length)).toEqual([...EMISSIONS_CSV_COLUMNS]);
    expect(header!.slice(EMISSIONS_CSV_COLUMNS.length)).toEqual(['calls', 'traced_calls', 'measured_calls', 'prompt_tokens', 'completion_tokens', 'tracking_methods', 'call_kinds']);
    const llama = Object.fromEntries(header!.map((h, i) => [h, rows[0]![i]]));
    expect(llama.timestamp).toBe('2026-01-02T03:04:05.000Z');
    expect(llama.project_name).toBe('bot');
    expect(llama.run_id).toBe('llama');
    expect(Number(llama.duration)).toBe(8); // s
    expect(Number(llama.emissions)).toBeCloseTo(0.004, 12); // kg
    expect(Number(llama.energy_consumed)).toBeCloseTo(0.016, 12); // kWh
    expect(Number(llama.gpu_energy)).toBeCloseTo(0.01, 12); // kWh
    // W = kWh × 3.6e6 J / s: 10 Wh of GPU energy over 8 s of server time is 4500 W.
    expect(Number(llama.gpu_power)).toBeCloseTo(4500, 6);
    expect(Number(llama.emissions_rate)).toBeCloseTo(0.0005, 12); // kg/s
    expect([llama.calls, llama.traced_calls, llama.measured_calls]).toEqual(['3', '2', '2']);
    expect(llama.tracking_methods).toBe('codecarbon');
    expect(rows).toHaveLength(2);
  });

  it('quotes model ids that would break a CSV or run in a spreadsheet', () => {
    const tracker = new CarbonTracker();
    tracker.record(measured, { modelId: 'a,"b"\nc' });
    tracker.record(measured, { modelId: '=cmd()' });
    const text = tracker.toEmissionsCsv();
    expect(text).toContain('"a,""b""\nc"');
    expect(text).toContain(`"'=cmd()"`);
  });
});

describe('tracker.toBoAmpsReport', () => {
  const schema = boampsSchema;
  const validator = boampsValidator;

  const options: BoAmpsReportOptions = {
    infrastructure: { infraType: 'onPremise', components: [{ componentType: 'gpu', nbComponent: 1, componentName: 'NVIDIA L4', memorySize: 24 }] },
    environment: { country: 'france' },
    publisher: { name: 'ACME', confidentialityLevel: 'internal' },
    reportId: 'report-1',
    now: new Date('2026-01-02T03:04:05Z'),
  };

  it('validates the official example (the validator works)', () => {
    const validate = validator();
    expect(validate(schema('example-llm-inference.json'))).toBe(true);
    expect(validate({ task: {}, measures: [], infrastructure: {} })).toBe(false);
  });

  it('produces a report valid against the BoAmps schemas', () => {
    const report = sampleTracker().toBoAmpsReport(options);
    const validate = validator();
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report.task.taskStage).toBe('inference');
    expect(report.task.nbRequest).toBe(3);
    expect(report.task.dataset).toEqual([
      { dataUsage: 'input', dataType: 'token', dataQuantity: 210 },
      { dataUsage: 'output', dataType: 'token', dataQuantity: 120 },
    ]);
    expect(report.task.algorithms.map((a) => a.foundationModelName)).toEqual(['llama', 'mistral']);
    expect(report.measures).toHaveLength(1);
    expect(report.measures[0]!.measurementMethod).toBe('codecarbon');
    expect(report.measures[0]!.powerConsumption).toBeCloseTo(0.019, 12); // kWh
    expect(report.measures[0]!.measurementDuration).toBe(10);
    expect(report.task.taskDescription).toMatch(/3 of 4 calls carried a trace .*1 call without a trace is not in the codecarbon measure/);
    expect(report.header).toMatchObject({ reportId: 'report-1', reportDatetime: '2026-01-02 03:04:05', reportStatus: 'draft' });
  });

  it('reports one model when asked', () => {
    const report = sampleTracker().toBoAmpsReport({ ...options, modelId: 'mistral' });
    expect(validator()(report)).toBe(true);
    expect(report.task.nbRequest).toBe(1);
    expect(report.measures[0]!.powerConsumption).toBeCloseTo(0.003, 12);
  });

  it('refuses to report energy it never saw', () => {
    const tracker = new CarbonTracker();
    tracker.record(undefined, { modelId: 'x' });
    expect(() => tracker.toBoAmpsReport(options)).toThrow(RangeError);
    expect(() => sampleTracker().toBoAmpsReport({ ...options, modelId: 'nope' })).toThrow(/no traced calls for model nope/);
  });
});

describe('honest exports', () => {
  it('emissions.csv powers are energy ÷ duration over the calls that carried a duration', () => {
    const tracker = new CarbonTracker();
    // 1 Wh of CPU in 1 s is 3,600 W; a second call's 1 Wh came without a duration.
    tracker.record(parseCarbonTrace({ energy_consumed_wh: 1, cpu_energy_wh: 1, emissions_g_co2: 0.5, duration_seconds: 1 }), { modelId: 'm' });
    tracker.record(parseCarbonTrace({ energy_consumed_wh: 1, cpu_energy_wh: 1, emissions_g_co2: 0.5 }), { modelId: 'm' });
    const [header, row] = tracker.toEmissionsCsv().trimEnd().split('\n').map((l) => l.split(','));
    const cell = (name: string) => row![header!.indexOf(name)];
    expect(Number(cell('cpu_power'))).toBe(3600); // not 7,200: the untimed call's energy is not divided by the timed call's second
    expect(Number(cell('emissions_rate'))).toBe(0.0005 / 1);
    expect(Number(cell('cpu_energy'))).toBe(0.002); // every call's energy is still in the sums
    expect(cell('gpu_power')).toBe(''); // nobody reported GPU energy: unknown, not 0
  });

  it('emissions.csv: empty cells for a model nothing was traced for, no float noise', () => {
    const tracker = new CarbonTracker();
    tracker.record(undefined, { modelId: 'untraced' });
    for (let i = 0; i < 3; i++) tracker.record(parseCarbonTrace({ energy_consumed_wh: 0.0000016 / 3 * 1000, duration_seconds: 0.1 }), { modelId: 'noisy' });
    const lines = tracker.toEmissionsCsv().trimEnd().split('\n').map((l) => l.split(','));
    const header = lines[0]!;
    const rowOf = (model: string) => Object.fromEntries(header.map((h, i) => [h, lines.find((l) => l[2] === model)![i]]));
    const untraced = rowOf('untraced');
    for (const column of ['duration', 'emissions', 'emissions_rate', 'cpu_power', 'cpu_energy', 'gpu_energy', 'ram_energy', 'energy_consumed']) {
      expect(untraced[column], column).toBe('');
    }
    expect(untraced.calls).toBe('1');
    // 3 × 0.00000053333… kWh prints as the 12-significant-digit value, not 0.0000016000000000000001.
    expect(rowOf('noisy').energy_consumed).toBe('0.0000016');
  });

  it('BoAmps: dates in the schema\'s YYYY-MM-DD HH:MM:SS form; the measure begins with the first traced call', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2026-03-01T08:00:00Z'));
      const tracker = new CarbonTracker();
      tracker.record(undefined, { modelId: 'llama' });
      vi.setSystemTime(new Date('2026-03-01T09:15:30Z'));
      tracker.record(measured, { modelId: 'llama' });
      vi.setSystemTime(new Date('2026-03-02T10:00:00Z'));
      tracker.record(measured, { modelId: 'llama' });
      vi.setSystemTime(new Date('2026-03-05T12:00:00Z'));
      const report = tracker.toBoAmpsReport({ infrastructure: { infraType: 'onPremise', components: [{ componentType: 'gpu', nbComponent: 1 }] } });
      expect(report.header.reportDatetime).toBe('2026-03-05 12:00:00');
      expect(report.measures[0]!.measurementDateTime).toBe('2026-03-01 09:15:30');
    } finally {
      vi.useRealTimers();
    }
  });

  it('bounds memory with maxModels: further models share one overflow row, and the exports say so', () => {
    const tracker = new CarbonTracker({ maxModels: 3 });
    for (let i = 0; i < 50; i++) tracker.record(measured, { modelId: `tenant-${i}-lora` });
    const byModel = tracker.byModel();
    expect(Object.keys(byModel)).toEqual(['tenant-0-lora', 'tenant-1-lora', 'tenant-2-lora', OVERFLOW_MODEL]);
    expect(byModel[OVERFLOW_MODEL]!.calls).toBe(47);
    expect(tracker.totals().calls).toBe(50);
    expect(tracker.toEmissionsCsv()).toContain(`,${OVERFLOW_MODEL},`);
    const report = tracker.toBoAmpsReport({ infrastructure: { infraType: 'onPremise', components: [{ componentType: 'gpu', nbComponent: 1 }] } });
    expect(report.task.taskDescription).toContain(`"${OVERFLOW_MODEL}" stands for the models beyond the tracker's maxModels distinct ids`);
    expect(new CarbonTracker().byModel()).toEqual({});
  });

  it('counts per field how many calls a sum covers, so a partial sum shows', () => {
    const tracker = new CarbonTracker();
    tracker.record(parseCarbonTrace({ energy_consumed_wh: 1 }), { modelId: 'm' });
    tracker.record(parseCarbonTrace({ energy_consumed_wh: 1, emissions_g_co2: 0.4 }), { modelId: 'm' });
    expect(tracker.totals()).toMatchObject({ tracedCalls: 2, callsWith: { energyKwh: 2, gwpKgco2eq: 1, durationSeconds: 0 } });
  });
});
