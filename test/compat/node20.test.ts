/**
 * What `npm install` gives a Node.js 20 user today: the newest `ai` (7) and `@langchain/openai`
 * (1.6) declare Node ≥ 22, so npm picks ai@6 with @ai-sdk/openai-compatible@2 and
 * @ai-sdk/openai@3, and @langchain/openai@1.5 (on openai@6). Those exact versions, through the
 * paths a user takes.
 */
import { ChatOpenAI } from 'langchain-openai-v15';
import { createOpenAI } from 'ai-sdk-openai-v3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CarbonTracker, getCarbonMetrics } from '../../src/index';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { CarbonTraceCallbackHandler } from '../../src/langchain/index';
import { lastUserText, sampleTrace, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS, type Loose } from '../ai-sdk/majors';

let server: FixtureServer;
beforeAll(async () => {
  server = await startFixtureServer((req) => {
    const n = Number(lastUserText(req).replace('call-', '')) || 1;
    return { id: 'chatcmpl-1', content: `answer ${n}`, trace: sampleTrace(n), tracePlacement: n % 2 ? 'usage' : 'finish', delayMs: n % 3 };
  });
});
afterAll(() => server.close());

describe('@langchain/openai 1.5 (Node 20)', () => {
  it('handler.fetch: invoke, streaming: true and .stream(), concurrent, with a shared response id', async () => {
    const tracker = new CarbonTracker();
    const handler = new CarbonTraceCallbackHandler({ tracker, onWarning: false });
    const plain = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
    const streaming = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, streaming: true, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
    const results = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const n = i + 1;
        if (n % 3 === 0) {
          let text = '';
          for await (const chunk of await plain.stream(`call-${n}`, { callbacks: [handler] })) text += chunk.content;
          return { n, text, metrics: undefined };
        }
        const message = await (n % 3 === 1 ? plain : streaming).invoke(`call-${n}`, { callbacks: [handler] });
        return { n, text: message.content, metrics: getCarbonMetrics(message) };
      }),
    );
    for (const { n, text, metrics } of results) {
      expect(text).toBe(`answer ${n}`);
      if (metrics) expect(metrics.promptTokens).toBe(10 * n);
    }
    expect(tracker.totals()).toMatchObject({ calls: 12, tracedCalls: 12, promptTokens: 10 * 78 });
    expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('__includeRawResponse: invoke', async () => {
    const handler = new CarbonTraceCallbackHandler({ onWarning: false });
    const model = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, __includeRawResponse: true, configuration: { baseURL: server.baseURL } });
    expect(getCarbonMetrics(await model.invoke('call-4', { callbacks: [handler] }))?.promptTokens).toBe(40);
  });
});

describe('ai@6 with @ai-sdk/openai 3 .chat() (Node 20)', () => {
  const { ai } = MAJORS[1]!;

  it('generateText and streamText', async () => {
    const tracker = new CarbonTracker();
    const model = ai.wrapLanguageModel({ model: createOpenAI({ baseURL: server.baseURL, apiKey: 'x' }).chat('fixture-model') as Loose, middleware: carbonTraceMiddleware({ tracker, onWarning: false }) });
    const generated = await ai.generateText({ model, prompt: 'call-2' });
    expect(getCarbonMetrics(generated)?.promptTokens).toBe(20);
    const streamed = ai.streamText({ model, prompt: 'call-3' });
    expect(await streamed.text).toBe('answer 3');
    expect(getCarbonMetrics(await streamed.providerMetadata)?.promptTokens).toBe(30);
    expect(tracker.totals()).toMatchObject({ calls: 2, tracedCalls: 2 });
  });
});
