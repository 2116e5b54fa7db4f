/**
 * Model Garden v1 sends the session's running total and its running mean, never this request's
 * emissions. Through both adapters with the real clients: what carbon-trace books for a session
 * must never exceed the server's own session total, over sequential and concurrent calls, idle
 * time, other clients' requests and a restart.
 */
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CarbonTracker, getCarbonMetrics } from '../../src/index';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { CarbonTraceCallbackHandler } from '../../src/langchain/index';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS } from '../ai-sdk/majors';

/** A Model Garden v1 server's carbon state: one session, as its CodeCarbon tracker sees it. */
class V1Session {
  totalKg = 0.01; // 10 g of idle since the model was loaded
  requests = 0;
  sessionsTotalKg: number[] = [];
  serve(requestKg: number) {
    this.totalKg += requestKg;
    this.requests++;
    return {
      emissions_g_co2: this.totalKg * 1000,
      emissions_per_request_g: (this.totalKg * 1000) / this.requests,
      session_total_kg_co2: this.totalKg,
      session_requests: this.requests,
      session_tokens: this.requests * 50,
      tracking_active: true,
      measured: true,
    };
  }
  restart() {
    this.sessionsTotalKg.push(this.totalKg);
    this.totalKg = 0.002;
    this.requests = 0;
  }
}

let server: FixtureServer;
let session: V1Session;
beforeAll(async () => {
  server = await startFixtureServer();
});
afterAll(() => server.close());

/** Calls through one adapter, with idle time, other clients and a restart between them. */
async function drive(call: () => Promise<unknown>): Promise<void> {
  session = new V1Session();
  server.reply = () => ({ content: 'ok', trace: session.serve(0.0001) });
  for (let i = 0; i < 20; i++) {
    await call();
    if (i % 4 === 0) session.totalKg += 0.001; // idle: 1 g
    if (i % 5 === 0) session.serve(0.0003); // another client's request
  }
  await Promise.all(Array.from({ length: 15 }, () => call()));
  session.restart();
  for (let i = 0; i < 10; i++) await call();
  await Promise.all(Array.from({ length: 10 }, () => call()));
  session.restart();
}

function expectWithinServerTotals(tracker: CarbonTracker) {
  const serverTotalKg = session.sessionsTotalKg.reduce((a, b) => a + b, 0);
  const booked = tracker.totals().gwpKgco2eq;
  expect(booked).toBeGreaterThan(0);
  expect(booked).toBeLessThanOrEqual(serverTotalKg);
  expect(tracker.totals().calls).toBe(55);
  // The first response of each session, and late ones, book nothing rather than a guess.
  expect(tracker.totals().tracedCalls).toBeLessThan(55);
}

describe('Model Garden v1 sessions', () => {
  it('AI SDK: booked emissions never exceed the server session totals', async () => {
    const { ai, model } = MAJORS[2]!;
    const tracker = new CarbonTracker();
    const wrapped = ai.wrapLanguageModel({ model: model(server.baseURL), middleware: carbonTraceMiddleware({ tracker, onWarning: false }) });
    const shares: Array<number | undefined> = [];
    await drive(async () => shares.push(getCarbonMetrics(await ai.generateText({ model: wrapped, prompt: 'x' }))?.gwpKgco2eq));
    expectWithinServerTotals(tracker);
    expect(shares.filter((s) => s !== undefined).length).toBeGreaterThan(30);
  });

  it('LangChain: booked emissions never exceed the server session totals', async () => {
    const tracker = new CarbonTracker();
    const handler = new CarbonTraceCallbackHandler({ tracker, onWarning: false });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
    let n = 0;
    // Distinct prompts, so that concurrent calls are told apart by their requests.
    await drive(() => chat.invoke(`call ${n++}`, { callbacks: [handler] }));
    expectWithinServerTotals(tracker);
    expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });
});
