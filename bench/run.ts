/**
 * `npm run bench`: what carbon-trace costs, as ratios measured side by side in one run.
 * A and B alternate sample by sample; the figure is the ratio of medians. Writes bench/RESULTS.md.
 *
 * Not a test: nothing here fails on a number. Run with `--quick` for a smoke run (CI).
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, streamText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { CarbonTracker, parseCarbonTrace } from '../src/index';
import { carbonTraceMiddleware } from '../src/ai-sdk/index';
import { CarbonTraceCallbackHandler } from '../src/langchain/index';
import { createEnergyMeter, withCarbonTrace } from '../src/server/index';
import { estimateCallImpact } from '../src/estimate/index';
import { sampleTrace, startFixtureServer } from '../test/fixtures/openai-compatible-server';

const quick = process.argv.includes('--quick');
const SAMPLES = quick ? 3 : 11;
// Rows with small differences on a shared machine: more pairs steady the median.
const LANGCHAIN_SAMPLES = quick ? 3 : 31;
(globalThis as Record<string, unknown>).AI_SDK_LOG_WARNINGS = false;

type Row = { name: string; a: string; b: string; value: string; target: string; met: boolean | undefined };
const rows: Row[] = [];

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Alternates A and B (B first on odd samples, so neither always runs warm). Returns the medians in
 * ms and the median of the paired ratios B_i ÷ A_i: each pair ran back to back, so a pause of the
 * shared machine moves both of a pair, not one side of the comparison.
 */
async function abTest(a: () => PromiseLike<unknown>, b: () => PromiseLike<unknown>, samples = SAMPLES): Promise<{ a: number; b: number; ratio: number }> {
  await a();
  await b(); // warm-up
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < samples; i++) {
    for (const [fn, out] of (i % 2 ? [[b, tb], [a, ta]] : [[a, ta], [b, tb]]) as Array<[() => PromiseLike<unknown>, number[]]>) {
      const start = performance.now();
      await fn();
      out.push(performance.now() - start);
    }
  }
  return { a: median(ta), b: median(tb), ratio: median(ta.map((x, i) => tb[i]! / x)) };
}

/** A ratio row; with `calls`, also the absolute cost per call. A NaN target is a reference figure. */
function ratioRow(name: string, a: string, b: string, r: { a: number; b: number; ratio: number }, target: number, calls?: number): void {
  const { ratio } = r;
  const perCall = calls ? `, ${(((ratio - 1) * r.a) / calls * 1000).toFixed(0)} µs/call` : '';
  const hasTarget = !Number.isNaN(target);
  rows.push({ name, a: `${a}: ${r.a.toFixed(1)} ms`, b: `${b}: ${r.b.toFixed(1)} ms`, value: `${ratio.toFixed(3)}×${perCall}`, target: hasTarget ? `≤ ${target}×` : '—', met: hasTarget ? ratio <= target : undefined });
  console.log(`${name}: ${ratio.toFixed(3)}×${perCall} (${r.a.toFixed(1)} → ${r.b.toFixed(1)} ms)`);
}

/**
 * CPU profile of `calls` runs of `fn`: the self time of carbon-trace's own code (frames in src/)
 * and of everything the process did, per call. A profile attributes cost where wall-clock ratios
 * on a shared machine cannot resolve a few percent.
 */
async function profileCalls(fn: () => PromiseLike<unknown>, calls: number): Promise<{ oursMicros: number; busyMicros: number }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 50 });
  await session.post('Profiler.start');
  for (let i = 0; i < calls; i++) await fn();
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  let ours = 0;
  let busy = 0;
  profile.samples!.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame;
    const delta = profile.timeDeltas![i]!;
    if (frame.functionName !== '(idle)') busy += delta;
    if (frame.url.includes('/src/')) ours += delta;
  });
  return { oursMicros: ours / calls, busyMicros: busy / calls };
}

const times = async (n: number, fn: () => PromiseLike<unknown>): Promise<void> => {
  for (let i = 0; i < n; i++) await fn();
};

const server = await startFixtureServer();
const quiet = { onWarning: false as const };

// ---- 1. generateText over loopback -------------------------------------------------------
{
  server.reply = () => ({ content: 'A short answer about energy.', trace: sampleTrace() });
  const provider = createOpenAICompatible({ name: 'garden', baseURL: server.baseURL });
  const bare = provider('m');
  const wrapped = wrapLanguageModel({ model: provider('m'), middleware: carbonTraceMiddleware(quiet) });
  const n = quick ? 20 : 200;
  const r = await abTest(
    () => times(n, () => generateText({ model: bare, prompt: 'x' })),
    () => times(n, () => generateText({ model: wrapped, prompt: 'x' })),
  );
  ratioRow(`generateText ×${n}, loopback`, 'bare', 'middleware', r, 1.05, n);
  // What wrapLanguageModel itself costs: a middleware that only passes the call on.
  const identity = wrapLanguageModel({ model: provider('m'), middleware: { specificationVersion: 'v3' as const, wrapGenerate: async ({ doGenerate }) => doGenerate() } });
  const r2 = await abTest(
    () => times(n, () => generateText({ model: identity, prompt: 'x' })),
    () => times(n, () => generateText({ model: wrapped, prompt: 'x' })),
  );
  ratioRow(`generateText ×${n}, loopback, vs an identity middleware`, 'identity', 'middleware', r2, 1.05, n);
}

// ---- 2. streamText of a 2,000-chunk response over loopback -------------------------------
{
  server.reply = () => ({ content: 'word '.repeat(2000), chunks: 2000, trace: sampleTrace() });
  const provider = createOpenAICompatible({ name: 'garden', baseURL: server.baseURL, includeUsage: true });
  const bare = provider('m');
  const wrapped = wrapLanguageModel({ model: provider('m'), middleware: carbonTraceMiddleware(quiet) });
  const n = quick ? 2 : 10;
  const r = await abTest(
    () => times(n, () => streamText({ model: bare, prompt: 'x' }).consumeStream()),
    () => times(n, () => streamText({ model: wrapped, prompt: 'x' }).consumeStream()),
  );
  ratioRow(`streamText 2,000 chunks ×${n}, loopback`, 'bare', 'middleware', r, 1.1, n);
}

// ---- 3. streamText over a mock model emitting 20,000 parts, in memory --------------------
{
  const PARTS = 20_000;
  const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: PARTS, text: PARTS, reasoning: 0 } };
  // Like a real provider: raw chunks only when asked, one per SSE event, the trace on the last.
  const mock = () =>
    new MockLanguageModelV4({
      doStream: async (options) => {
        const raw = options.includeRawChunks === true;
        let i = 0;
        const stream = new ReadableStream({
          pull(controller) {
            if (i === 0) {
              controller.enqueue({ type: 'stream-start', warnings: [] });
              controller.enqueue({ type: 'text-start', id: 't' });
            }
            if (i < PARTS) {
              if (raw) controller.enqueue({ type: 'raw', rawValue: { choices: [{ delta: { content: 'w ' } }] } });
              controller.enqueue({ type: 'text-delta', id: 't', delta: 'w ' });
              i++;
              return;
            }
            if (raw) controller.enqueue({ type: 'raw', rawValue: { choices: [{ delta: {}, finish_reason: 'stop' }], x_carbon_trace: sampleTrace() } });
            controller.enqueue({ type: 'text-end', id: 't' });
            controller.enqueue({ type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage });
            controller.close();
          },
        });
        return { stream };
      },
    });
  const identity = {
    specificationVersion: 'v3' as const,
    wrapStream: async ({ doStream }: { doStream: () => PromiseLike<{ stream: ReadableStream }> }): Promise<{ stream: ReadableStream }> => {
      const { stream, ...rest } = await doStream();
      return { ...rest, stream: stream.pipeThrough(new TransformStream()) };
    },
  };
  const base = wrapLanguageModel({ model: mock(), middleware: identity });
  const ours = wrapLanguageModel({ model: mock(), middleware: carbonTraceMiddleware(quiet) });
  const r = await abTest(
    () => streamText({ model: base, prompt: 'x' }).consumeStream(),
    () => streamText({ model: ours, prompt: 'x' }).consumeStream(),
  );
  ratioRow('streamText 20,000 parts, mock model, in memory', 'identity middleware', 'carbon-trace', r, 1.5);
}

// ---- 4. ChatOpenAI invoke over loopback, both capture paths ------------------------------
{
  server.reply = () => ({ content: 'A short answer about energy.', trace: sampleTrace() });
  const n = quick ? 20 : 200;
  const handler = new CarbonTraceCallbackHandler(quiet);
  const common = { model: 'm', apiKey: 'x', maxRetries: 0 };
  const bare = new ChatOpenAI({ ...common, configuration: { baseURL: server.baseURL } });
  const viaFetch = new ChatOpenAI({ ...common, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
  const rawBare = new ChatOpenAI({ ...common, __includeRawResponse: true, configuration: { baseURL: server.baseURL } });
  // What LangChain's callback machinery costs any handler: an awaited handler that does nothing.
  class NoopHandler extends BaseCallbackHandler {
    name = 'noop';
    constructor() {
      super({ _awaitHandler: true });
    }
    override handleLLMEnd(): void {}
  }
  const noop = new NoopHandler();
  const r0 = await abTest(
    () => times(n, () => bare.invoke('x')),
    () => times(n, () => bare.invoke('x', { callbacks: [noop] })),
    LANGCHAIN_SAMPLES,
  );
  ratioRow(`ChatOpenAI invoke ×${n}, a no-op handler (LangChain's own cost, reference)`, 'bare', 'no-op handler', r0, Number.NaN, n);
  // What passing any custom fetch to the OpenAI client costs, and what ours adds on top.
  const passthrough = new ChatOpenAI({ ...common, configuration: { baseURL: server.baseURL, fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init) } });
  const rf0 = await abTest(
    () => times(n, () => bare.invoke('x')),
    () => times(n, () => passthrough.invoke('x')),
    LANGCHAIN_SAMPLES,
  );
  ratioRow(`ChatOpenAI invoke ×${n}, a pass-through custom fetch (the client's own cost, reference)`, 'bare', 'pass-through fetch', rf0, Number.NaN, n);
  // The same handler in both, so that only the fetch differs: what observing the response costs.
  const rf1 = await abTest(
    () => times(n, () => passthrough.invoke('x', { callbacks: [handler] })),
    () => times(n, () => viaFetch.invoke('x', { callbacks: [handler] })),
    LANGCHAIN_SAMPLES,
  );
  ratioRow(`ChatOpenAI invoke ×${n} with the handler, handler.fetch vs a pass-through fetch`, 'pass-through fetch', 'handler.fetch', rf1, 1.05, n);
  const r1 = await abTest(
    () => times(n, () => bare.invoke('x')),
    () => times(n, () => viaFetch.invoke('x', { callbacks: [handler] })),
    LANGCHAIN_SAMPLES,
  );
  ratioRow(`ChatOpenAI invoke ×${n}, handler.fetch`, 'bare', 'handler', r1, 1.05, n);
  const r2 = await abTest(
    () => times(n, () => rawBare.invoke('x')),
    () => times(n, () => rawBare.invoke('x', { callbacks: [handler] })),
    LANGCHAIN_SAMPLES,
  );
  ratioRow(`ChatOpenAI invoke ×${n}, __includeRawResponse`, 'bare', 'handler', r2, 1.05, n);
  const r3 = await abTest(
    () => times(n, () => viaFetch.invoke('x', { callbacks: [noop] })),
    () => times(n, () => viaFetch.invoke('x', { callbacks: [handler] })),
    LANGCHAIN_SAMPLES,
  );
  ratioRow(`ChatOpenAI invoke ×${n}, handler.fetch vs a no-op handler`, 'no-op handler', 'handler', r3, 1.05, n);

  // Where the time goes: carbon-trace's own code, by profile, with and without handler.fetch.
  const calls = quick ? 200 : 2000;
  for (const [label, model] of [['a pass-through fetch', passthrough], ['handler.fetch', viaFetch]] as const) {
    const p = await profileCalls(() => model.invoke('x', { callbacks: [handler] }), calls);
    const value = `${p.oursMicros.toFixed(1)} µs/call of ${p.busyMicros.toFixed(0)} µs/call CPU (${((100 * p.oursMicros) / p.busyMicros).toFixed(1)} %)`;
    rows.push({ name: `ChatOpenAI invoke with the handler and ${label}: CPU in carbon-trace's code (profile)`, a: '', b: '', value, target: '—', met: undefined });
    console.log(`profile, ${label}: ${value}`);
  }

  // A model that takes 20 ms to answer, still far faster than a real one.
  server.reply = () => ({ content: 'A short answer about energy.', trace: sampleTrace(), latencyMs: 20 });
  const m = quick ? 5 : 25;
  const r4 = await abTest(
    () => times(m, () => bare.invoke('x')),
    () => times(m, () => viaFetch.invoke('x', { callbacks: [handler] })),
    LANGCHAIN_SAMPLES,
  );
  ratioRow(`ChatOpenAI invoke ×${m}, handler.fetch, 20 ms model latency`, 'bare', 'handler', r4, 1.05, m);
}

// ---- 5. withCarbonTrace on a 2,000-chunk stream, and the meter's own CPU ------------------
{
  // The upstream in a process of its own, as a model server always is: in this one, its writes
  // would compete with the handler for the event loop and charge the handler for them.
  const upstream = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'upstream.ts'), '2000'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(upstream.stdout!, 'data')) as [Buffer];
  const origin = new URL(line.toString().trim()).origin;
  const meter = createEnergyMeter({ sources: 'auto', sampleIntervalMs: 100, onWarning: false });
  await meter.ready;
  const bare = (request: Request) => fetch(new URL(new URL(request.url).pathname, origin), { method: request.method, headers: request.headers, body: request.body, duplex: 'half' } as RequestInit);
  const traced = withCarbonTrace(bare, { meter, onWarning: false });
  const request = () => new Request('http://bench/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] }) });
  const n = quick ? 2 : 10;
  const r = await abTest(
    () => times(n, async () => (await bare(request())).text()),
    () => times(n, async () => (await traced(request())).text()),
    LANGCHAIN_SAMPLES,
  );
  ratioRow(`withCarbonTrace, 2,000-chunk stream ×${n}, vs the bare handler (upstream in its own process)`, 'bare handler', 'withCarbonTrace', r, 1.05, n);
  await meter.close();
  upstream.stdin!.end();

  // The meter alone, in fresh processes: with this machine's sources at 100 ms, less a process
  // that only runs a 100 ms timer.
  const seconds = quick ? 2 : 10;
  const measure = (mode: string) =>
    JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'meter-cpu.ts'), mode, String(seconds)], { encoding: 'utf8' })) as { share: number; description: string };
  const baseline = measure('baseline');
  const metered = measure('meter');
  const share = Math.max(0, metered.share - baseline.share);
  rows.push({ name: `energy meter at a 100 ms interval (${metered.description.split(';')[0]}), CPU of one core above a bare timer`, a: `bare timer: ${(baseline.share * 100).toFixed(2)} %`, b: `meter: ${(metered.share * 100).toFixed(2)} %`, value: `${(share * 100).toFixed(2)} %`, target: '< 1 %', met: share < 0.01 });
  console.log(`meter CPU: ${(share * 100).toFixed(2)} % of one core (${(metered.share * 100).toFixed(2)} % with the meter, ${(baseline.share * 100).toFixed(2)} % with a bare timer)`);
}

// The proxy's own benchmark, beside nginx, is bench/proxy.ts (`npm run bench:proxy`).

await server.close();

// ---- 7. parseCarbonTrace throughput -------------------------------------------------------
{
  const full = sampleTrace(3, { cpu_power_watts: 45, gpu_power_watts: 250, ram_power_watts: 10, tracking_active: true });
  const text = JSON.stringify(full);
  const measure = (input: unknown) => {
    const n = quick ? 20_000 : 200_000;
    for (let i = 0; i < 1000; i++) parseCarbonTrace(input);
    const start = performance.now();
    for (let i = 0; i < n; i++) parseCarbonTrace(input);
    return n / ((performance.now() - start) / 1000);
  };
  for (const [label, input] of [['object', full], ['JSON text', text]] as const) {
    const ops = measure(input);
    rows.push({ name: `parseCarbonTrace, full record as ${label}`, a: '', b: '', value: `${Math.round(ops).toLocaleString('en')} ops/s`, target: '—', met: undefined });
    console.log(`parseCarbonTrace (${label}): ${Math.round(ops)} ops/s`);
  }
}

// ---- 7b. estimates: estimateCallImpact throughput, and generateText with estimate on ------
{
  const n = quick ? 20_000 : 200_000;
  const call = { provider: 'openai.chat', modelId: 'gpt-4o-mini', outputTokens: 200, latencySeconds: 2 };
  for (let i = 0; i < 1000; i++) estimateCallImpact(call, quiet);
  const start = performance.now();
  for (let i = 0; i < n; i++) estimateCallImpact(call, quiet);
  const ops = n / ((performance.now() - start) / 1000);
  rows.push({ name: 'estimateCallImpact (EcoLogits, a ranged model)', a: '', b: '', value: `${Math.round(ops).toLocaleString('en')} ops/s`, target: '—', met: undefined });
  console.log(`estimateCallImpact: ${Math.round(ops)} ops/s`);

  // An API-style call with no trace: the estimate is the middleware's only extra work.
  const api = await startFixtureServer(() => ({ content: 'A short answer about energy.', usage: { prompt_tokens: 10, completion_tokens: 40 } }));
  const provider = createOpenAICompatible({ name: 'openai', baseURL: api.baseURL });
  const bare = provider('gpt-4o-mini');
  const estimating = wrapLanguageModel({ model: provider('gpt-4o-mini'), middleware: carbonTraceMiddleware({ ...quiet, estimate: true }) });
  const calls = quick ? 20 : 200;
  const r = await abTest(
    () => times(calls, () => generateText({ model: bare, prompt: 'x' })),
    () => times(calls, () => generateText({ model: estimating, prompt: 'x' })),
  );
  ratioRow(`generateText ×${calls}, loopback, no trace, estimate: true`, 'bare', 'middleware + estimate', r, 1.05, calls);
  await api.close();
}

// ---- 8. pathological traces: 2 MB, 10,000 levels deep -----------------------------------
{
  const big = JSON.stringify({ ...sampleTrace(), padding: 'x'.repeat(2 * 1024 * 1024) });
  const deep = `{"emissions_g_co2":1,"nested":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`;
  for (const [label, input] of [['2 MB trace (JSON text)', big], ['10,000 levels of nesting (JSON text)', deep]] as const) {
    const samples: number[] = [];
    for (let i = 0; i < (quick ? 3 : 9); i++) {
      const start = performance.now();
      parseCarbonTrace(input);
      samples.push(performance.now() - start);
    }
    const ms = median(samples);
    rows.push({ name: `parseCarbonTrace, ${label}`, a: '', b: '', value: `${ms.toFixed(1)} ms`, target: '≪ 1000 ms', met: ms < 1000 });
    console.log(`parseCarbonTrace ${label}: ${ms.toFixed(1)} ms`);
  }
}

// ---- 9. memory -----------------------------------------------------------------------------
const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};
{
  const tracker = new CarbonTracker();
  const metrics = parseCarbonTrace(sampleTrace())!;
  const n = quick ? 100_000 : 1_000_000;
  for (let i = 0; i < 10_000; i++) tracker.record(metrics, { modelId: `model-${i % 10}` }); // warm
  const before = heap();
  for (let i = 0; i < n; i++) tracker.record(i % 5 ? metrics : undefined, { modelId: `model-${i % 10}` });
  const growth = heap() - before;
  rows.push({ name: `CarbonTracker: heap growth over ${n.toLocaleString('en')} records, 10 models`, a: '', b: '', value: `${(growth / 1024).toFixed(1)} KiB`, target: 'flat (< 1 MiB)', met: gc ? growth < 1024 * 1024 : undefined });
  console.log(`tracker heap growth: ${(growth / 1024).toFixed(1)} KiB (${Object.keys(tracker.byModel()).length} models)`);
}
{
  const handler = new CarbonTraceCallbackHandler(quiet);
  const llm = { lc: 1, type: 'not_implemented' as const, id: ['bench'] };
  const n = quick ? 1000 : 10_000;
  const run = (i: number) => {
    const root = `root-${i}`;
    handler.handleChainStart(llm, {}, root);
    handler.handleChatModelStart(llm, [], `llm-${i}`, root);
    handler.handleLLMEnd({ generations: [[{ text: '', generationInfo: { x_carbon_trace: sampleTrace() } }]] }, `llm-${i}`, root);
    handler.handleChainEnd({}, root);
  };
  for (let i = 0; i < 1000; i++) run(i); // warm
  const before = heap();
  for (let i = 0; i < n; i++) run(1000 + i);
  const growth = heap() - before;
  const state = handler.pendingState();
  const flat = state.runs === 0 && state.roots === 0 && state.captures === 0;
  rows.push({ name: `LangChain handler: state after ${n.toLocaleString('en')} runs`, a: '', b: '', value: `runs ${state.runs}, roots ${state.roots}, captures ${state.captures}; heap ${(growth / 1024).toFixed(1)} KiB`, target: 'flat', met: flat && (!gc || growth < 1024 * 1024) });
  console.log(`handler state: ${JSON.stringify(state)}, heap growth ${(growth / 1024).toFixed(1)} KiB`);
}

// ---- report --------------------------------------------------------------------------------
const header = ['measure', 'A', 'B', 'result', 'target', 'met'];
const table = [header, ...rows.map((r) => [r.name, r.a, r.b, r.value, r.target, r.met === undefined ? '—' : r.met ? 'yes' : 'NO'])];
const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
console.log(`\n${table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')}`);

if (!quick) {
  const md = [
    '# carbon-trace benchmark results',
    '',
    `Written by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}.`,
    `Each ratio is the median of B ÷ A over ${SAMPLES} alternating pairs of samples (${LANGCHAIN_SAMPLES} for the ChatOpenAI rows), measured side by side in one run.${gc ? '' : ' (Heap figures without --expose-gc are indicative only.)'}`,
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...table.slice(1).map((row) => `| ${row.join(' | ')} |`),
    '',
  ].join('\n');
  writeFileSync(join(import.meta.dirname, 'RESULTS.md'), md);
  console.log('\nwritten to bench/RESULTS.md');
}
