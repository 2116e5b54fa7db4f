/**
 * Every figure per token divides like by like: the energy and the tokens of the same requests.
 * The trial that found it: an Ollama model whose one request in eleven reported its tokens got
 * 11× its energy per token from the shipped rule, which divided all of the model's energy by the
 * tokens of that one request. Here the books' rows, `/metrics` and the shipped Prometheus rules
 * (run by the real `promtool test rules` on the books' own /metrics text) agree on the right figure.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createProxyBooks, type BookedRequest, type ProxyBooks } from '../../src/server/books';
import { createEnergyMeter } from '../../src/server/index';
import { runProcess } from '../setup/processes';
import { describeWith, requireSystemTool } from '../setup/system-tools';

const root = resolve(import.meta.dirname, '../..');
const PROMTOOL = requireSystemTool(import.meta.filename, { name: 'promtool', candidates: ['/usr/bin/promtool'], install: 'sudo apt-get install -y prometheus' });
const grid = { gCo2PerKwh: 100, source: 'given' };
const dirs: string[] = [];
const open: ProxyBooks[] = [];
afterAll(async () => {
  for (const books of open) await books.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A closed request of `joules` (undefined: no figure) and the usage its response reported. */
const request = (model: string, joules: number | undefined, usage: BookedRequest['usage'], more: Partial<BookedRequest> = {}): BookedRequest => ({
  model,
  status: 200,
  streamed: false,
  energy: { joules: joules === undefined ? {} : { gpu: joules }, totalJoules: joules, durationSeconds: 1, measured: true, warnings: [] },
  grid,
  usage,
  trace: undefined,
  ...more,
});

function books(): ProxyBooks {
  const b = createProxyBooks({ warn: () => {} });
  open.push(b);
  return b;
}

/** The Ollama trial: 11 requests of 100 J, one of which reported its tokens (20 in, 50 out); and an embedding model's request (1,000 tokens in, 30 J). */
function bookTheTrial(b: ProxyBooks): void {
  for (let i = 0; i < 10; i++) b.book(request('ollama-m', 100, {}, { streamed: true, kind: 'chat', wire: 'ollama' }));
  b.book(request('ollama-m', 100, { promptTokens: 20, completionTokens: 50 }, { kind: 'chat', wire: 'ollama' }));
  b.book(request('nomic-embed', 30, { promptTokens: 1000 }, { kind: 'embedding', wire: 'ollama' }));
}

const statsOf = async (b: ProxyBooks) => {
  const meter = createEnergyMeter({ sources: [], sampleIntervalMs: 0, onWarning: false });
  try {
    const c = b.combine(meter.stats(), grid);
    return { views: b.views(c), metrics: b.prometheus(c, grid) };
  } finally {
    await meter.close();
  }
};

const sample = (metrics: string, name: string, labels: string) => {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};

describe('the books keep, per row, the energy and the tokens of the same requests', () => {
  it('the Ollama trial: 2 J per completion token (not 22); an embedding and a request with no figure weigh on no other side', async () => {
    const b = books();
    bookTheTrial(b);
    // An embedding on the chat model reports prompt tokens only: its energy must not weigh on completion tokens.
    b.book(request('ollama-m', 30, { promptTokens: 1000 }, { kind: 'embedding', wire: 'ollama' }));
    // Tokens but no energy figure (a source could not be read): on neither side.
    b.book(request('ollama-m', undefined, { promptTokens: 7, completionTokens: 500 }, { kind: 'chat', wire: 'ollama' }));
    const { views, metrics } = await statsOf(b);
    const row = views.byModel['ollama-m']!;
    expect(row.requests).toBe(13);
    expect(row.joules).toBe(1130);
    // Every reported token is still counted, as before…
    expect([row.promptTokens, row.completionTokens, row.requestsWithUsage]).toEqual([1027, 550, 3]);
    // …but a figure per token divides these.
    expect(row.withTokens.completion).toEqual({ requests: 1, joules: 100, emissionsGrams: expect.any(Number), tokens: 50 });
    expect(row.withTokens.prompt).toMatchObject({ requests: 2, joules: 130, tokens: 1020 });
    expect(row.withTokens.completion.joules / row.withTokens.completion.tokens).toBe(2);
    expect(row.withTokens.completion.emissionsGrams).toBeCloseTo((100 / 3.6e6) * 100, 15);
    // The kinds: the same split, per kind of call.
    expect(Object.keys(views.byKind).sort()).toEqual(['chat', 'embedding']);
    expect(views.byKind.embedding!.withTokens.prompt).toMatchObject({ requests: 2, joules: 60, tokens: 2000 });
    expect(views.byKind.embedding!.withTokens.completion).toMatchObject({ requests: 0, joules: 0, tokens: 0 });
    expect(views.byKind.chat!.withTokens.completion).toMatchObject({ requests: 1, joules: 100, tokens: 50 });
    expect(views.byKind.chat!.requests + views.byKind.embedding!.requests).toBe(14);

    expect(sample(metrics, 'carbon_trace_energy_with_tokens_joules_total', 'model="ollama-m",kind="completion"')).toBe(100);
    expect(sample(metrics, 'carbon_trace_tokens_with_energy_total', 'model="ollama-m",kind="completion"')).toBe(50);
    expect(sample(metrics, 'carbon_trace_energy_with_tokens_joules_total', 'model="ollama-m",kind="prompt"')).toBe(130);
    expect(sample(metrics, 'carbon_trace_tokens_with_energy_total', 'model="ollama-m",kind="prompt"')).toBe(1020);
    // The families the old rule divided, unchanged: all the energy, all the tokens reported.
    expect(sample(metrics, 'carbon_trace_tokens_total', 'model="ollama-m",kind="completion"')).toBe(550);
    expect(sample(metrics, 'carbon_trace_call_kind_requests_total', 'call_kind="embedding"')).toBe(2);
  });

  it('bad counts are no counts: NaN, negative, Infinity and strings add nothing and go into no file', async () => {
    const b = books();
    b.book(request('m', 10, { promptTokens: NaN, completionTokens: -3 }));
    b.book(request('m', 10, { promptTokens: Infinity, completionTokens: '12' as unknown as number }));
    b.book(request('m', 10, { completionTokens: 4 }));
    const { views, metrics } = await statsOf(b);
    const row = views.byModel.m!;
    expect([row.promptTokens, row.completionTokens, row.requestsWithUsage]).toEqual([0, 4, 1]);
    expect(row.withTokens.completion).toMatchObject({ requests: 1, joules: 10, tokens: 4 });
    expect(row.withTokens.prompt).toMatchObject({ requests: 0, joules: 0, tokens: 0 });
    expect(metrics).not.toMatch(/NaN|Inf/);
    expect(views.tokens).toMatchObject({ prompt: 0, completion: 4, requestsWithUsage: 1 });
  });
});

/**
 * Prometheus' input series, in promtool's notation, from two scrapes of the books: before (every
 * counter at its first value, 5 minutes) and after the requests (10 minutes).
 */
function seriesOf(before: string, after: string, families: readonly string[]): string {
  const values = (text: string) => {
    const out = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const name = line.slice(0, line.search(/[{ ]/));
      if (families.includes(name)) out.set(line.slice(0, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
    return out;
  };
  const first = values(before);
  const last = values(after);
  return [...last]
    .map(([series, value]) => `      - series: '${series.replace(/\{/, '{instance="box-1",job="carbon-trace",').replace(/,\}/, '}')}'\n        values: '${first.get(series) ?? 0}x5 ${value}x10'`)
    .join('\n');
}

describeWith(PROMTOOL, 'the shipped rules, run by promtool on the books\' /metrics', () => {
  it('energy per 1,000 completion tokens: 2,000 J (the rule as it was said 22,000); per 1,000 prompt tokens: 5,000 J, and 30 J for the embedding model', async () => {
    const b = books();
    b.book(request('ollama-m', 1, { promptTokens: 1, completionTokens: 1 }));
    const before = (await statsOf(b)).metrics;
    bookTheTrial(b);
    const after = (await statsOf(b)).metrics;
    const families = ['carbon_trace_energy_joules_total', 'carbon_trace_tokens_total', 'carbon_trace_energy_with_tokens_joules_total', 'carbon_trace_tokens_with_energy_total'];
    const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-promtool-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'rules.yml'), readFileSync(join(root, 'deploy/prometheus/rules.yml')));
    // The Grafana panels, as Grafana would send them (5-minute rates, every instance).
    const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/carbon-trace-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
    const panel = (title: string) => {
      const expr = dashboard.panels.find((p) => p.title === title)?.targets?.[0]?.expr ?? '';
      return expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*').replaceAll("'", "\\'");
    };
    writeFileSync(
      join(dir, 'test.yml'),
      `rule_files: ['rules.yml']
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
${seriesOf(before, after, families)}
    promql_expr_test:
      - expr: 'model:carbon_trace_energy_joules_per_1k_completion_tokens:rate5m'
        eval_time: 8m
        exp_samples:
          - labels: 'model:carbon_trace_energy_joules_per_1k_completion_tokens:rate5m{model="ollama-m"}'
            value: 2000
      # promtool compares exactly: 100 / 20 comes out as 5000.000000000001.
      - expr: 'round(model:carbon_trace_energy_joules_per_1k_prompt_tokens:rate5m, 1e-6)'
        eval_time: 8m
        exp_samples:
          - labels: '{model="nomic-embed"}'
            value: 30
          - labels: '{model="ollama-m"}'
            value: 5000
      - expr: 'round(${panel('Energy per 1,000 completion tokens')}, 1e-6)'
        eval_time: 8m
        exp_samples:
          - labels: '{model="ollama-m"}'
            value: 2000
      - expr: 'round(${panel('Energy per 1,000 prompt tokens')}, 1e-6)'
        eval_time: 8m
        exp_samples:
          - labels: '{model="nomic-embed"}'
            value: 30
          - labels: '{model="ollama-m"}'
            value: 5000
      # The rule as it was: all the energy over the tokens of only some requests.
      - expr: '1000 * sum by (model) (rate(carbon_trace_energy_joules_total{model="ollama-m"}[5m])) / sum by (model) (rate(carbon_trace_tokens_total{model="ollama-m",kind="completion"}[5m]))'
        eval_time: 8m
        exp_samples:
          - labels: '{model="ollama-m"}'
            value: 22000
`,
    );
    const { code, stdout, stderr } = await runProcess(PROMTOOL!, ['test', 'rules', join(dir, 'test.yml')], { timeoutMs: 20_000 });
    expect(`${stdout}${stderr}`).toMatch(/SUCCESS/);
    expect(code).toBe(0);
  });
});
