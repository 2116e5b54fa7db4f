/**
 * The plain `openai` SDK, as the README's quickstart uses it: the official client against the
 * loopback fixture, the core reading the response and the chunks it hands over. Typed as a user's
 * strict code is — no cast, no `any`.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCarbonTraceAccumulator, extractCarbonMetrics, formatEmissions, formatEnergy } from '../../src/index';
import { sampleTrace, startFixtureServer, type FixtureServer, type TracePlacement } from '../fixtures/openai-compatible-server';
import { startProxyInFront, startWireServer, type WireServer } from '../fixtures/wire-server';

let server: FixtureServer;
let client: OpenAI;
beforeAll(async () => {
  server = await startFixtureServer();
  client = new OpenAI({ baseURL: server.baseURL, apiKey: 'not-needed', maxRetries: 0 });
});
afterAll(() => server.close());

const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'hi' }];

describe('openai SDK (plain), chat.completions.create', () => {
  it('non-streaming: extractCarbonMetrics(response) reads the x_carbon_trace the SDK keeps', async () => {
    server.reply = () => ({ content: 'traced answer', trace: sampleTrace(2) });
    const response = await client.chat.completions.create({ model: 'fixture-model', messages });
    expect(response.choices[0]?.message.content).toBe('traced answer');
    const carbon = extractCarbonMetrics(response);
    // sampleTrace(2): 0.2 g, 0.8 Wh.
    expect(carbon).toMatchObject({ trackingMethod: 'codecarbon', measured: true, promptTokens: 20, completionTokens: 10 });
    expect(carbon?.gwpKgco2eq).toBeCloseTo(0.0002, 12);
    expect(carbon?.energyKwh).toBeCloseTo(0.0008, 12);
    expect(`${formatEnergy(carbon?.energyKwh)}, ${formatEmissions(carbon?.gwpKgco2eq)}`).toBe('800 mWh, 200 mg CO2eq');
  });

  it.each<TracePlacement>(['finish', 'usage', 'every'])('streaming, trace on %s: the accumulator over the chunks gives the last trace', async (placement) => {
    server.reply = () => ({ content: 'one two three', trace: sampleTrace(3), tracePlacement: placement, usage: { prompt_tokens: 7, completion_tokens: 3 } });
    const stream = await client.chat.completions.create({ model: 'fixture-model', messages, stream: true, stream_options: { include_usage: true } });
    const trace = createCarbonTraceAccumulator();
    let text = '';
    for await (const chunk of stream) {
      trace.add(chunk);
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe('one two three');
    expect(trace.build()?.gwpKgco2eq).toBeCloseTo(0.0003, 12);
    expect(trace.build()?.promptTokens).toBe(30);
  });

  it('no trace: undefined, and the formatters show a dash rather than a zero', async () => {
    server.reply = () => ({ content: 'untraced' });
    const response = await client.chat.completions.create({ model: 'fixture-model', messages });
    const carbon = extractCarbonMetrics(response);
    expect(carbon).toBeUndefined();
    expect(`${formatEnergy(carbon?.energyKwh)}, ${formatEmissions(carbon?.gwpKgco2eq)}`).toBe('—, —');

    const stream = await client.chat.completions.create({ model: 'fixture-model', messages, stream: true });
    const trace = createCarbonTraceAccumulator();
    for await (const chunk of stream) trace.add(chunk);
    expect(trace.hasTrace).toBe(false);
    expect(trace.build()).toBeUndefined();
  });
});

describe('openai SDK (plain), the other wires', () => {
  let wires: WireServer;
  let onWire: OpenAI;
  beforeAll(async () => {
    wires = await startWireServer();
    onWire = new OpenAI({ baseURL: `${wires.baseURL}/v1`, apiKey: 'not-needed', maxRetries: 0 });
  });
  afterAll(() => wires.close());

  it('responses.create: extractCarbonMetrics reads the trace on the response object', async () => {
    wires.reply = () => ({ text: 'traced answer', trace: sampleTrace(2) });
    const response = await onWire.responses.create({ model: 'fixture-model', input: 'hi' });
    expect(response.output_text).toBe('traced answer');
    const warnings: string[] = [];
    const carbon = extractCarbonMetrics(response, { onWarning: (w) => void warnings.push(w) });
    expect(carbon?.gwpKgco2eq).toBeCloseTo(0.0002, 12);
    expect(warnings).toEqual([]);
  });

  it('responses.create streamed: the accumulator over the events finds it on response.completed', async () => {
    wires.reply = () => ({ text: 'one two three', trace: sampleTrace(3) });
    const stream = await onWire.responses.create({ model: 'fixture-model', input: 'hi', stream: true });
    const trace = createCarbonTraceAccumulator({ onWarning: false });
    let text = '';
    const types: string[] = [];
    for await (const event of stream) {
      trace.add(event);
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    expect(text.trim()).toBe('one two three');
    expect(types.at(-1)).toBe('response.completed');
    expect(trace.build()?.gwpKgco2eq).toBeCloseTo(0.0003, 12);
  });

  it('embeddings.create: the trace is at the top level of the list, as for a completion', async () => {
    wires.reply = () => ({ trace: sampleTrace(1), embeddingDims: 4 });
    // The SDK asks for base64 by default and decodes it: the body's other fields stay.
    const response = await onWire.embeddings.create({ model: 'fixture-model', input: ['a', 'b'] });
    expect(response.data).toHaveLength(2);
    expect(response.data[0]!.embedding).toHaveLength(4);
    expect(extractCarbonMetrics(response)?.energyKwh).toBeCloseTo(0.0004, 12);
  });

  it('an untraced answer gives undefined with the warning the README promises', async () => {
    wires.reply = () => ({});
    const warnings: string[] = [];
    const response = await onWire.embeddings.create({ model: 'fixture-model', input: 'a' });
    expect(extractCarbonMetrics(response, { onWarning: (w) => void warnings.push(w) })).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/^no x_carbon_trace in the response: no carbon metrics for it/)]);
  });
});

describe('openai SDK (plain) through the proxy, in front of a server that sends no trace', () => {
  let wires: WireServer;
  let viaProxy: OpenAI;
  let stop: () => Promise<void> = async () => {};
  beforeAll(async () => {
    wires = await startWireServer();
    const proxy = await startProxyInFront(wires.baseURL);
    viaProxy = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'not-needed', maxRetries: 0 });
    stop = proxy.stop;
  });
  afterAll(async () => {
    await stop();
    await wires.close();
  });

  it('chat.completions, responses and embeddings each carry the proxy\'s measured figure', async () => {
    wires.reply = () => ({});
    const onWarning = (w: string) => expect.fail(w);
    const chat = await viaProxy.chat.completions.create({ model: 'fixture-model', messages });
    const response = await viaProxy.responses.create({ model: 'fixture-model', input: 'hi' });
    const embeddings = await viaProxy.embeddings.create({ model: 'fixture-model', input: ['a'] });
    for (const body of [chat, response, embeddings]) {
      const carbon = extractCarbonMetrics(body, { onWarning });
      expect(carbon).toMatchObject({ trackingMethod: 'codecarbon', measured: true });
      expect(carbon?.energyKwh).toBeGreaterThanOrEqual(0);
    }
    const stream = await viaProxy.responses.create({ model: 'fixture-model', input: 'hi', stream: true });
    const trace = createCarbonTraceAccumulator({ onWarning });
    for await (const event of stream) trace.add(event);
    expect(trace.build()).toMatchObject({ measured: true });
  });
});
