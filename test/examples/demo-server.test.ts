import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractCarbonMetrics } from '../../src/index';
import { startDemoServer } from '../../examples/server/demo-server';
import type { FixtureServer } from '../fixtures/openai-compatible-server';

let server: FixtureServer;
beforeAll(async () => {
  server = await startDemoServer({ gridIntensityGPerKwh: 100, cpuTdpWatts: 60 });
});
afterAll(() => server.close());

async function complete(body: Record<string, unknown>): Promise<Response> {
  return fetch(`${server.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo-model', messages: [{ role: 'user', content: 'Hello there' }], ...body }),
  });
}

describe('demo server', () => {
  it('attaches an honest, internally consistent estimate to every JSON response', async () => {
    const body = await (await complete({})).json();
    const trace = body.x_carbon_trace;
    expect(trace.measured).toBe(false);
    expect(trace.gpu_energy_wh).toBe(0);
    expect(trace.cpu_energy_wh).toBeGreaterThan(0);
    // Energy is the sum of its parts; emissions are energy × the configured grid intensity.
    expect(trace.energy_consumed_wh).toBeCloseTo(trace.cpu_energy_wh + trace.ram_energy_wh, 15);
    expect(trace.emissions_g_co2).toBeCloseTo((trace.energy_consumed_wh / 1000) * 100, 15);
    // CPU power never exceeds the configured TDP; energy is power × duration.
    expect(trace.cpu_power_watts).toBeLessThanOrEqual(60);
    expect(trace.cpu_energy_wh).toBeCloseTo((trace.cpu_power_watts * trace.duration_seconds) / 3600, 15);
    expect(trace.completion_tokens).toBe(body.usage.completion_tokens);
    expect(extractCarbonMetrics(body)?.warnings).toEqual([]);
  });

  it('puts the trace on the finish_reason chunk when streaming', async () => {
    const text = await (await complete({ stream: true })).text();
    const chunks = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
    const traced = chunks.filter((c) => c.x_carbon_trace);
    expect(traced).toHaveLength(1);
    expect(traced[0].choices[0].finish_reason).toBe('stop');
  });

  it('answers tool calls, then text once the tool has answered', async () => {
    const tools = [{ type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const first = await (await complete({ tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] })).json();
    expect(first.choices[0].message.tool_calls[0].function).toEqual({ name: 'weather', arguments: '{"city":"Paris"}' });
    const second = await (
      await complete({
        tools,
        messages: [
          { role: 'user', content: 'Weather in Paris?' },
          { role: 'assistant', tool_calls: first.choices[0].message.tool_calls },
          { role: 'tool', tool_call_id: first.choices[0].message.tool_calls[0].id, content: 'sunny' },
        ],
      })
    ).json();
    expect(typeof second.choices[0].message.content).toBe('string');
    expect(second.x_carbon_trace.energy_consumed_wh).toBeGreaterThan(0);
  });
});
