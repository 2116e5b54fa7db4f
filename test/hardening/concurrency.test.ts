/**
 * 500 concurrent calls, mixed across both adapters, generate and stream, each answered with its
 * own trace: every call must get exactly its own metrics.
 */
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CarbonTracker, getCarbonMetrics, type CarbonMetrics } from '../../src/index';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { CarbonTraceCallbackHandler } from '../../src/langchain/index';
import { lastUserText, sampleTrace, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS } from '../ai-sdk/majors';

let server: FixtureServer;
beforeAll(async () => {
  server = await startFixtureServer((req) => {
    const n = Number(lastUserText(req).replace('call-', ''));
    // Trace n is identifiable by its prompt_tokens (10n); placements vary so chunks interleave.
    return { content: `answer ${n}`, trace: sampleTrace(n), tracePlacement: n % 2 ? 'finish' : 'usage', delayMs: n % 3 };
  });
});
afterAll(() => server.close());

describe('500 concurrent calls across both adapters', () => {
  it('gives every call its own trace', async () => {
    const N = 500;
    const { ai, model } = MAJORS[2]!;
    const tracker = new CarbonTracker();
    const lcEvents: Array<CarbonMetrics | undefined> = [];
    const wrapped = ai.wrapLanguageModel({ model: model(server.baseURL), middleware: carbonTraceMiddleware({ tracker, onWarning: false }) });
    const handler = new CarbonTraceCallbackHandler({ tracker, onWarning: false, onMetrics: (m) => void lcEvents.push(m) });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });

    const results = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const n = i + 1;
        const prompt = `call-${n}`;
        switch (n % 4) {
          case 0: {
            const r = await ai.generateText({ model: wrapped, prompt });
            return { n, text: r.text, metrics: getCarbonMetrics(r) };
          }
          case 1: {
            const r = ai.streamText({ model: wrapped, prompt });
            return { n, text: await r.text, metrics: getCarbonMetrics(await r.providerMetadata) };
          }
          case 2: {
            const m = await chat.invoke(prompt, { callbacks: [handler] });
            return { n, text: m.content, metrics: getCarbonMetrics(m) };
          }
          default: {
            let text = '';
            for await (const c of await chat.stream(prompt, { callbacks: [handler] })) text += c.content;
            return { n, text, metrics: undefined }; // .stream() callers see no metadata; checked via onMetrics
          }
        }
      }),
    );

    for (const { n, text, metrics } of results) {
      expect(text).toBe(`answer ${n}`);
      if (n % 4 !== 3) {
        expect(metrics?.promptTokens).toBe(10 * n);
        expect(metrics?.gwpKgco2eq).toBeCloseTo((0.1 * n) / 1000, 12);
      }
    }
    // Every LangChain call reported once, each with a different trace, none lost or doubled.
    const lcTokens = lcEvents.map((m) => m?.promptTokens).sort((a, b) => a! - b!);
    const expected = results.filter(({ n }) => n % 4 >= 2).map(({ n }) => 10 * n).sort((a, b) => a - b);
    expect(lcTokens).toEqual(expected);
    // Totals: Σ 0.1n g over n = 1..500.
    expect(tracker.totals()).toMatchObject({ calls: N, tracedCalls: N });
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo((0.1 * (N * (N + 1)) / 2) / 1000, 9);
    expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  }, 60_000);
});
