/**
 * The middleware's fetch inside the Edge Runtime VM: it uses only web globals (AbortController,
 * Response, TransformStream, TextDecoder), and hands an NDJSON stream's trace to its call there
 * as it does on Node. The provider is played by hand: `doStream` fetches with the signal the
 * middleware gave the call, as every AI SDK provider does.
 */
import { join, resolve } from 'node:path';
import { EdgeVM } from '@edge-runtime/vm';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

describe('the middleware\'s fetch inside the Edge Runtime VM', () => {
  it('reads the trace of an NDJSON stream cut at odd places, and leaves the bytes alone', async () => {
    const result = await build({
      entryPoints: [join(root, 'src/ai-sdk/index.ts')],
      bundle: true,
      write: false,
      platform: 'neutral',
      mainFields: ['module', 'main'],
      format: 'iife',
      globalName: 'carbonTrace',
      logLevel: 'silent',
    });
    const vm = new EdgeVM();
    vm.evaluate(result.outputFiles[0]!.text);
    const out = await vm.evaluate(`
      (async () => {
        const lines = '{"message":{"content":"hi"},"done":false}\\n{"message":{"content":""},"done":true,"x_carbon_trace":{"emissions_g_co2":3,"energy_consumed_wh":6}}\\n';
        const bytes = new TextEncoder().encode(lines);
        // Chunks that split a line, and a multi-byte character nowhere: cut every 7 bytes.
        const base = async () => new Response(new ReadableStream({ start(c) { for (let i = 0; i < bytes.length; i += 7) c.enqueue(bytes.slice(i, i + 7)); c.close(); } }), { headers: { 'content-type': 'application/x-ndjson' } });
        const middleware = carbonTrace.carbonTraceMiddleware({ onWarning: false, fetch: base });
        const fetch = middleware.fetch;
        const params = await middleware.transformParams({ type: 'stream', params: { prompt: [] } });
        let received = '';
        const doStream = async () => {
          const response = await fetch('http://ollama.invalid/api/chat', { method: 'POST', body: '{}', signal: params.abortSignal });
          received = await response.text();
          return { stream: new ReadableStream({ start(c) { c.enqueue({ type: 'finish', finishReason: 'stop', usage: {} }); c.close(); } }) };
        };
        const { stream } = await middleware.wrapStream({ doStream, doGenerate: doStream, params, model: { provider: 'ollama.responses', modelId: 'm' } });
        const seen = [];
        const reader = stream.getReader();
        for (;;) { const { done, value } = await reader.read(); if (done) break; seen.push(value); }
        return JSON.stringify({ same: received === lines, metadata: seen[0].providerMetadata });
      })()`);
    const { same, metadata } = JSON.parse(out);
    expect(same).toBe(true);
    expect(metadata.codecarbon.gwpKgco2eq).toBeCloseTo(0.003, 12);
    expect(metadata.codecarbon.energyKwh).toBeCloseTo(0.006, 12);
  });
});
