/**
 * withCarbonTrace in front of the loopback fixture server, served over node:http: the traces it
 * adds, the bytes it leaves alone, the faults it must survive, and both adapters reading what it
 * produces — to the joule the meter attributed.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequestListener } from '@remix-run/node-fetch-server';
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CarbonTracker, extractCarbonMetrics, getCarbonMetrics } from '../../src/index';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { CarbonTraceCallbackHandler } from '../../src/langchain/index';
import { createEnergyMeter, withCarbonTrace, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { lastUserText, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS } from '../ai-sdk/majors';

let upstream: FixtureServer;
beforeAll(async () => {
  upstream = await startFixtureServer();
});
afterAll(() => upstream.close());

/**
 * A machine drawing a constant 250 W (200 W GPU, 50 W CPU), measured, and the meter's clock: the
 * source reports the energy at the moment the meter last read the clock (it reads it just before
 * the sources), so powers come out exact however loaded the machine is.
 */
function constantPower(): { source: EnergySource; clock: () => number } {
  const start = performance.now();
  let now = start;
  const clock = () => (now = performance.now());
  const seconds = () => (now - start) / 1000;
  return { clock, source: { name: 'constant 250 W', measured: true, read: () => ({ gpuJoules: 200 * seconds(), cpuJoules: 50 * seconds() }) } };
}

type Proxy = { baseURL: string; meter: EnergyMeter; close(): Promise<void> };
let proxy: Proxy | undefined;
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

/** withCarbonTrace over the constant 250 W machine, and `more` sources beside it. */
async function startProxy(more: EnergySource[] = [], gridIntensity?: { gCo2PerKwh: number }): Promise<Proxy> {
  const constant = constantPower();
  const meter = createEnergyMeter({ sources: [constant.source, ...more], clock: constant.clock, sampleIntervalMs: 20, onWarning: false });
  const origin = new URL(upstream.baseURL).origin;
  const forward = (request: Request) => {
    const url = new URL(request.url);
    return fetch(new URL(url.pathname + url.search, origin), { method: request.method, headers: request.headers, body: request.body, signal: request.signal, duplex: 'half' } as RequestInit);
  };
  const server: Server = createServer(createRequestListener(withCarbonTrace(forward, { meter, onWarning: false, ...(gridIntensity ? { gridIntensity } : {}) }), { onError: () => undefined }));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    meter,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await meter.close();
    },
  };
}

const post = (baseURL: string, body: Record<string, unknown>, init: RequestInit = {}) =>
  fetch(`${baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }), ...init });

const events = (text: string) => text.split('\n\n').filter(Boolean);

describe('withCarbonTrace', () => {
  it('JSON: adds the documented full record as the last member, every other byte as the upstream sent it', async () => {
    proxy = await startProxy();
    upstream.reply = () => ({ id: 'same', content: 'a fixed answer', latencyMs: 30, usage: { prompt_tokens: 11, completion_tokens: 3 } });
    const direct = await (await post(upstream.baseURL, {})).text();
    const response = await post(proxy.baseURL, {});
    const text = await response.text();
    expect(response.status).toBe(200);
    const at = text.lastIndexOf(',"x_carbon_trace":');
    expect(at).toBeGreaterThan(0);
    expect(text.slice(0, at) + text.slice(-1)).toBe(direct);
    const trace = JSON.parse(text).x_carbon_trace;
    expect(Object.keys(trace)).toEqual([
      'emissions_g_co2', 'energy_consumed_wh', 'cpu_energy_wh', 'gpu_energy_wh', 'duration_seconds', 'cpu_power_watts', 'gpu_power_watts',
      'measured', 'tracking_active', 'prompt_tokens', 'completion_tokens', 'grid_intensity_g_co2_per_kwh', 'grid_intensity_source',
    ]);
    expect(trace).toMatchObject({ measured: true, tracking_active: true, prompt_tokens: 11, completion_tokens: 3, grid_intensity_g_co2_per_kwh: 475 });
    // 250 W for the request's span, split 200/50, and CO2 at 475 g/kWh.
    expect(trace.gpu_power_watts).toBeCloseTo(200, 1);
    expect(trace.cpu_power_watts).toBeCloseTo(50, 1);
    expect(trace.energy_consumed_wh).toBeCloseTo(trace.cpu_energy_wh + trace.gpu_energy_wh, 12);
    expect(trace.emissions_g_co2).toBeCloseTo((trace.energy_consumed_wh / 1000) * 475, 12);
    expect(trace.duration_seconds).toBeGreaterThan(0.02);
    expect(extractCarbonMetrics(text)?.warnings).toEqual([]);
    expect(proxy.meter.stats()).toMatchObject({ requests: 1, activeRequests: 0 });
  });

  it('a stream: the trace rides on the last data chunk before [DONE], every other event unchanged', async () => {
    proxy = await startProxy();
    for (const usage of [false, true]) {
      upstream.reply = () => ({ id: 'same', content: 'one two three four', delayMs: 5 });
      const body = { stream: true, ...(usage ? { stream_options: { include_usage: true } } : {}) };
      const direct = events(await (await post(upstream.baseURL, body)).text());
      const ours = events(await (await post(proxy.baseURL, body)).text());
      expect(ours).toHaveLength(direct.length);
      const traced = ours.findIndex((e) => e.includes('x_carbon_trace'));
      expect(traced).toBe(direct.length - 2); // the last data chunk: finish, or usage when asked
      ours.forEach((event, i) => {
        if (i !== traced) expect(event).toBe(direct[i]);
      });
      const chunk = JSON.parse(ours[traced]!.slice('data: '.length));
      const { x_carbon_trace: trace, ...rest } = chunk;
      expect(rest).toEqual(JSON.parse(direct[traced]!.slice('data: '.length)));
      expect(trace.energy_consumed_wh).toBeGreaterThan(0);
      expect(trace.completion_tokens === undefined).toBe(!usage);
    }
  });

  it('errors, non-2xx responses and other routes pass through untouched; their energy is still booked', async () => {
    proxy = await startProxy();
    upstream.reply = () => ({ status: 500 });
    const direct = await post(upstream.baseURL, {});
    const ours = await post(proxy.baseURL, {});
    expect(ours.status).toBe(500);
    expect(await ours.text()).toBe(await direct.text());
    const models = await fetch(`${proxy.baseURL}/models`);
    expect(models.status).toBe(404);
    expect(await models.text()).toBe(JSON.stringify({ error: { message: 'no route /v1/models', type: 'not_found' } }));
    expect(proxy.meter.stats()).toMatchObject({ requests: 1, activeRequests: 0 });
  });

  it('a client that goes away mid-stream cancels the upstream body and closes the books', async () => {
    proxy = await startProxy();
    upstream.reply = () => ({ content: 'word '.repeat(200), delayMs: 10 });
    const controller = new AbortController();
    const response = await post(proxy.baseURL, { stream: true }, { signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    await expect(reader.read()).rejects.toThrow();
    for (let i = 0; i < 50 && proxy.meter.stats().activeRequests > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(proxy.meter.stats()).toMatchObject({ requests: 1, activeRequests: 0 });
    expect(proxy.meter.stats().attributedJoules).toBeGreaterThan(0);
  });

  it('an upstream cut mid-stream reaches the client as a cut, and the books close', async () => {
    proxy = await startProxy();
    upstream.reply = () => ({ content: 'one two three four five', cutAfterEvents: 3 });
    const response = await post(proxy.baseURL, { stream: true });
    await expect(response.text()).rejects.toThrow();
    for (let i = 0; i < 50 && proxy.meter.stats().activeRequests > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(proxy.meter.stats()).toMatchObject({ requests: 1, activeRequests: 0 });
  });

  it('a source whose read throws: the request completes, its trace says what is missing', async () => {
    const broken: EnergySource = { name: 'NVML', measured: true, read: () => Promise.reject(new Error('GPU is lost')) };
    proxy = await startProxy([broken], { gCo2PerKwh: 56 });
    upstream.reply = () => ({ content: 'still answered', latencyMs: 30 });
    const body = await (await post(proxy.baseURL, {})).json();
    expect(body.choices[0].message.content).toBe('still answered');
    expect(body.x_carbon_trace.warnings).toEqual(['NVML could not be read: GPU is lost']);
    expect(body.x_carbon_trace.grid_intensity_g_co2_per_kwh).toBe(56);
    expect(body.x_carbon_trace.energy_consumed_wh).toBeGreaterThan(0);
  });
});

describe('both adapters read what withCarbonTrace produces, to the joule the meter attributed', () => {
  it('50 concurrent calls: AI SDK and LangChain, JSON and streamed', async () => {
    proxy = await startProxy();
    upstream.reply = (req) => {
      const n = Number(lastUserText(req).replace('call-', ''));
      return { content: `answer ${n} `.repeat(1 + (n % 4)), delayMs: n % 3, latencyMs: n % 5 };
    };
    const tracker = new CarbonTracker();
    const { ai, model } = MAJORS[2]!;
    const wrapped = ai.wrapLanguageModel({ model: model(proxy.baseURL), middleware: carbonTraceMiddleware({ tracker, onWarning: false }) });
    const handler = new CarbonTraceCallbackHandler({ tracker, onWarning: false });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: proxy.baseURL, fetch: handler.fetch } });
    const texts = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const prompt = `call-${i + 1}`;
        switch (i % 4) {
          case 0:
            return (await ai.generateText({ model: wrapped, prompt })).text;
          case 1:
            return ai.streamText({ model: wrapped, prompt }).text;
          case 2:
            return String((await chat.invoke(prompt, { callbacks: [handler] })).content);
          default: {
            let text = '';
            for await (const chunk of await chat.stream(prompt, { callbacks: [handler] })) text += chunk.content;
            return text;
          }
        }
      }),
    );
    texts.forEach((text, i) => expect(text).toBe(`answer ${i + 1} `.repeat(1 + ((i + 1) % 4))));
    const totals = tracker.totals();
    expect(totals).toMatchObject({ calls: 50, tracedCalls: 50, measuredCalls: 50 });
    const stats = proxy.meter.stats();
    expect(stats).toMatchObject({ requests: 50, activeRequests: 0 });
    // What the adapters booked is what the meter attributed (kWh × 3.6e6 = J), to the joule.
    expect(Math.abs(totals.energyKwh! * 3.6e6 - stats.attributedJoules)).toBeLessThan(1e-6);
    expect(Math.abs(stats.attributedJoules + stats.idleJoules - stats.totalJoules)).toBeLessThan(1e-6);
    expect(getCarbonMetrics(await ai.generateText({ model: wrapped, prompt: 'call-1' }))?.measured).toBe(true);
  });
});

describe('createCarbonProxy before its first request', () => {
  it.each([
    [{ gCo2PerKwh: 56, source: 'our supplier' }, 56],
    [{ zone: 'FR' }, undefined],
  ] as const)('states the grid it was given, and books idle emissions at it (%j)', async (gridIntensity, expected) => {
    const { createCarbonProxy } = await import('../../src/server/index');
    const { gridIntensityOfZone } = await import('../../src/grid/index');
    const gCo2PerKwh = expected ?? gridIntensityOfZone('FR')!.gCo2PerKwh;
    const constant = constantPower();
    const meter = createEnergyMeter({ sources: [constant.source], clock: constant.clock, sampleIntervalMs: 20, onWarning: false });
    const proxy = createCarbonProxy({ upstream: upstream.baseURL.replace(/\/v1$/, ''), meter, gridIntensity, onWarning: false });
    await meter.ready;
    await new Promise((resolve) => setTimeout(resolve, 60));
    const stats = await proxy.stats();
    expect(stats.requests).toBe(0);
    expect(stats.grid.gCo2PerKwh).toBe(gCo2PerKwh);
    expect(stats.idleJoules).toBeGreaterThan(0);
    expect(stats.emissionsGrams.idle).toBeCloseTo((stats.idleJoules / 3.6e6) * gCo2PerKwh, 12);
    await meter.close();
  });
});
