/**
 * The examples' toy model, alone and behind the real proxy: alone it sends no trace, as vLLM,
 * llama.cpp, Ollama or TGI; behind carbon-trace/server every completion carries one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractCarbonMetrics } from '../../src/index';
import { startToyModel, type ToyModel } from '../../examples/server/toy-model';
import { startProxiedToyModel } from '../../examples/server/connection';

let model: ToyModel;
let proxied: Awaited<ReturnType<typeof startProxiedToyModel>>;
beforeAll(async () => {
  model = await startToyModel();
  proxied = await startProxiedToyModel({ gridIntensityGPerKwh: 100 });
});
afterAll(async () => {
  await model.close();
  await proxied.close();
});

const complete = (baseURL: string, body: Record<string, unknown>) =>
  fetch(`${baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'toy-model', messages: [{ role: 'user', content: 'Hello there' }], ...body }),
  });

describe('toy model', () => {
  it('answers like an uninstrumented server: no trace, JSON and streamed', async () => {
    const json = await (await complete(model.baseURL, {})).json();
    expect(typeof json.choices[0].message.content).toBe('string');
    expect(json.x_carbon_trace).toBeUndefined();
    const text = await (await complete(model.baseURL, { stream: true })).text();
    expect(text).not.toContain('x_carbon_trace');
    const tokens = text.split('\n\n').filter((e) => e.includes('"content":"') && !e.includes('"content":""'));
    expect(tokens.length).toBeGreaterThan(5); // one chunk per token, as it is made
  });

  it('answers tool calls, then text once the tool has answered', async () => {
    const tools = [{ type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const first = await (await complete(model.baseURL, { tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] })).json();
    expect(first.choices[0].message.tool_calls[0].function).toEqual({ name: 'weather', arguments: '{"city":"Paris"}' });
    const second = await (
      await complete(model.baseURL, {
        tools,
        messages: [
          { role: 'user', content: 'Weather in Paris?' },
          { role: 'assistant', tool_calls: first.choices[0].message.tool_calls },
          { role: 'tool', tool_call_id: first.choices[0].message.tool_calls[0].id, content: 'sunny' },
        ],
      })
    ).json();
    expect(typeof second.choices[0].message.content).toBe('string');
  });

  it('behind the proxy, every completion carries an internally consistent trace, at the given grid intensity', async () => {
    const body = await (await complete(proxied.baseURL, {})).json();
    const trace = body.x_carbon_trace;
    expect(trace.measured).toBe(false); // no power counters here: CodeCarbon's estimate
    expect(trace.energy_consumed_wh).toBeCloseTo((trace.cpu_energy_wh ?? 0) + (trace.gpu_energy_wh ?? 0) + (trace.ram_energy_wh ?? 0), 12);
    expect(trace.emissions_g_co2).toBeCloseTo((trace.energy_consumed_wh / 1000) * 100, 12);
    expect(trace.completion_tokens).toBe(body.usage.completion_tokens);
    expect(extractCarbonMetrics(body)?.warnings).toEqual([]);
    const streamed = await (await complete(proxied.baseURL, { stream: true })).text();
    const traced = streamed.split('\n\n').filter((e) => e.includes('x_carbon_trace'));
    expect(traced).toHaveLength(1);
    expect(JSON.parse(traced[0]!.slice(6)).choices[0].finish_reason).toBe('stop');
  });
});
