/**
 * The wires' own client libraries, at their current versions, pointed at the proxy in front of
 * the wire fixture: each hands its caller the trace the proxy put on the answer, where the
 * adapters read it (the `openai` SDK's Responses and embeddings results and stream events,
 * `@anthropic-ai/sdk`'s message and `message_delta` event, the `ollama` library's final object).
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractCarbonMetrics } from '../../src/index';
import { createCarbonProxy, createEnergyMeter, type BookedRequest, type CarbonProxy, type EnergyMeter } from '../../src/server/index';
import { startWireServer, type WireServer } from '../fixtures/wire-server';

let upstream: WireServer;
let proxy: CarbonProxy;
let meter: EnergyMeter;
let url: string;
const booked: BookedRequest[] = [];

beforeAll(async () => {
  upstream = await startWireServer();
  upstream.reply = () => ({ usage: { input: 9, output: 3 } });
  const start = performance.now();
  let now = start;
  meter = createEnergyMeter({
    sources: [{ name: '100 W', measured: true, read: () => ({ cpuJoules: (100 * (now - start)) / 1000 }) }],
    clock: () => (now = performance.now()),
    sampleIntervalMs: 10,
    onWarning: false,
  });
  proxy = createCarbonProxy({ upstream: upstream.baseURL, meter, gridIntensity: { gCo2PerKwh: 50 }, onWarning: false, onBooked: (b) => void booked.push(b) });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await proxy.close();
  await meter.close();
  await upstream.close();
});

/** The last trace the proxy booked as delivered: what the client must have got. */
const lastDelivered = () => booked.filter((b) => b.traceDelivered).at(-1)!.trace!;
const loose = (value: unknown) => value as { x_carbon_trace?: Record<string, unknown> };

describe('real clients through the proxy', () => {
  const openai = () => new OpenAI({ baseURL: `${url}/v1`, apiKey: 'test', maxRetries: 0 });

  it('openai: responses.create, JSON and streamed (the trace on response.completed\'s response)', async () => {
    const response = await openai().responses.create({ model: 'm', input: 'hi' });
    expect(loose(response).x_carbon_trace).toEqual(lastDelivered());
    expect(extractCarbonMetrics(response, { onWarning: false })?.promptTokens).toBe(9);
    const stream = await openai().responses.create({ model: 'm', input: 'hi', stream: true });
    let completed: unknown;
    for await (const event of stream) if (event.type === 'response.completed') completed = event.response;
    expect(loose(completed).x_carbon_trace).toEqual(lastDelivered());
    expect(lastDelivered()).toMatchObject({ prompt_tokens: 9, completion_tokens: 3, measured: true });
  });

  it('openai: embeddings.create (base64 by default) and chat.completions streamed', async () => {
    const embeddings = await openai().embeddings.create({ model: 'e', input: ['a', 'b'] });
    expect(embeddings.data).toHaveLength(2);
    expect(loose(embeddings).x_carbon_trace).toEqual(lastDelivered());
    expect(booked.at(-1)).toMatchObject({ kind: 'embedding', wire: 'embeddings', usage: { promptTokens: 9 } });
    const stream = await openai().chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const traces: unknown[] = [];
    for await (const chunk of stream) if (loose(chunk).x_carbon_trace) traces.push(loose(chunk).x_carbon_trace);
    expect(traces).toEqual([lastDelivered()]);
  });

  it('@anthropic-ai/sdk: messages.create, JSON and streamed (the trace on message_delta)', async () => {
    const anthropic = new Anthropic({ baseURL: url, apiKey: 'test', maxRetries: 0 });
    const message = await anthropic.messages.create({ model: 'c', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
    expect(loose(message).x_carbon_trace).toEqual(lastDelivered());
    const stream = await anthropic.messages.create({ model: 'c', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], stream: true });
    const deltas: unknown[] = [];
    for await (const event of stream) if (event.type === 'message_delta') deltas.push(loose(event).x_carbon_trace);
    expect(deltas).toEqual([lastDelivered()]);
    expect(booked.at(-1)).toMatchObject({ wire: 'anthropic', streamed: true, usage: { promptTokens: 9, completionTokens: 3 } });
  });

  it('ollama: chat streamed (NDJSON, its default in the REST API) and not, embed', async () => {
    const ollama = new Ollama({ host: url });
    const whole = await ollama.chat({ model: 'l', messages: [{ role: 'user', content: 'hi' }] });
    expect(loose(whole).x_carbon_trace).toEqual(lastDelivered());
    const finals: unknown[] = [];
    for await (const part of await ollama.chat({ model: 'l', messages: [{ role: 'user', content: 'hi' }], stream: true })) if (part.done) finals.push(loose(part).x_carbon_trace);
    expect(finals).toEqual([lastDelivered()]);
    expect(booked.at(-1)).toMatchObject({ wire: 'ollama', streamed: true, usage: { promptTokens: 9, completionTokens: 3 } });
    const embedded = await ollama.embed({ model: 'l', input: ['a'] });
    expect(loose(embedded).x_carbon_trace).toEqual(lastDelivered());
    expect(booked.at(-1)).toMatchObject({ kind: 'embedding', usage: { promptTokens: 9 } });
  });
});
