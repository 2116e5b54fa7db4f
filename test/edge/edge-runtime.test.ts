import { join, resolve } from 'node:path';
import { EdgeVM } from '@edge-runtime/vm';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

/**
 * Bundles an entry for a platform with no Node built-ins: esbuild fails on any `node:` import
 * (or bare `fs`, `http`, …) it cannot resolve, and the metafile lists every input.
 */
async function bundleForEdge(entry: string) {
  const result = await build({
    entryPoints: [join(root, entry)],
    bundle: true,
    write: false,
    platform: 'neutral',
    mainFields: ['module', 'main'],
    format: 'iife',
    globalName: 'carbonTrace',
    metafile: true,
    logLevel: 'silent',
  });
  return { code: result.outputFiles[0]!.text, inputs: Object.keys(result.metafile.inputs) };
}

describe.each(['src/index.ts', 'src/ai-sdk/index.ts', 'src/estimate/index.ts'])('%s on an edge runtime', (entry) => {
  it('imports no Node built-in, directly or through a dependency', async () => {
    const { inputs } = await bundleForEdge(entry);
    expect(inputs.filter((i) => i.startsWith('node:') || /^(fs|http|https|net|os|path|crypto|stream|zlib|child_process)$/.test(i))).toEqual([]);
    expect(inputs.some((i) => i.includes('@langchain') || i.includes('node_modules/ai/'))).toBe(false);
  });
});

describe('the core inside the Edge Runtime VM', () => {
  it('parses a trace', async () => {
    const { code } = await bundleForEdge('src/index.ts');
    const vm = new EdgeVM();
    vm.evaluate(code);
    const metrics = JSON.parse(
      vm.evaluate(`JSON.stringify(carbonTrace.parseCarbonTrace({ emissions_g_co2: '1.5', energy_consumed_wh: 3, measured: true }))`),
    );
    expect(metrics.gwpKgco2eq).toBeCloseTo(0.0015, 12);
    expect(metrics.energyKwh).toBeCloseTo(0.003, 12);
    expect(metrics.warnings).toHaveLength(1);
  });
});

describe('the AI SDK middleware inside the Edge Runtime VM', () => {
  it('reads a stream with the edge ReadableStream', async () => {
    const { code } = await bundleForEdge('src/ai-sdk/index.ts');
    const vm = new EdgeVM();
    vm.evaluate(code);
    const out = await vm.evaluate(`
      (async () => {
        const middleware = carbonTrace.carbonTraceMiddleware({ onWarning: false });
        const params = await middleware.transformParams({ type: 'stream', params: { prompt: [] } });
        const parts = [
          { type: 'raw', rawValue: { choices: [{ delta: { content: 'hi' } }] } },
          { type: 'text-delta', id: 't', delta: 'hi' },
          { type: 'raw', rawValue: { choices: [{ delta: {}, finish_reason: 'stop' }], x_carbon_trace: { emissions_g_co2: 2, energy_consumed_wh: 4 } } },
          { type: 'finish', finishReason: 'stop', usage: {} },
        ];
        const doStream = async () => ({ stream: new ReadableStream({ start(c) { for (const p of parts) c.enqueue(p); c.close(); } }) });
        const { stream } = await middleware.wrapStream({ doStream, doGenerate: doStream, params, model: { provider: 'edge', modelId: 'm' } });
        const seen = [];
        const reader = stream.getReader();
        for (;;) { const { done, value } = await reader.read(); if (done) break; seen.push(value); }
        return JSON.stringify({ includeRawChunks: params.includeRawChunks, seen });
      })()`);
    const { includeRawChunks, seen } = JSON.parse(out);
    expect(includeRawChunks).toBe(true);
    expect(seen.map((p: { type: string }) => p.type)).toEqual(['text-delta', 'finish']);
    expect(seen[1].providerMetadata.codecarbon.gwpKgco2eq).toBeCloseTo(0.002, 12);
  });
});

describe('estimates inside the Edge Runtime VM', () => {
  it('the middleware loads carbon-trace/estimate and estimates an untraced stream', async () => {
    const { code } = await bundleForEdge('src/ai-sdk/index.ts');
    const vm = new EdgeVM();
    vm.evaluate(code);
    const out = await vm.evaluate(`
      (async () => {
        const middleware = carbonTrace.carbonTraceMiddleware({ onWarning: false, estimate: true });
        const params = await middleware.transformParams({ type: 'stream', params: { prompt: [] } });
        const parts = [
          { type: 'text-delta', id: 't', delta: 'hi' },
          { type: 'finish', finishReason: 'stop', usage: { inputTokens: 5, outputTokens: 120 } },
        ];
        const doStream = async () => ({ stream: new ReadableStream({ start(c) { for (const p of parts) c.enqueue(p); c.close(); } }) });
        const { stream } = await middleware.wrapStream({ doStream, doGenerate: doStream, params, model: { provider: 'anthropic.messages', modelId: 'claude-sonnet-4-5' } });
        const seen = [];
        const reader = stream.getReader();
        for (;;) { const { done, value } = await reader.read(); if (done) break; seen.push(value); }
        return JSON.stringify(seen.at(-1).providerMetadata);
      })()`);
    const metadata = JSON.parse(out);
    expect(metadata.codecarbon).toBeUndefined();
    expect(metadata.ecologits).toMatchObject({ trackingMethod: 'ecologits', completionTokens: 120, inputs: { provider: 'anthropic', modelId: 'claude-sonnet-4-5-20250929' } });
    expect(metadata.ecologits.energyKwh).toBeGreaterThan(0);
  });
});
