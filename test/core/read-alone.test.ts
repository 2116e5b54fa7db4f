/**
 * extractCarbonMetrics and the accumulator read one response alone: they find the trace on every
 * wire's shape, and keep the README's promise that an `undefined` comes with a warning.
 */
import { describe, expect, it, vi } from 'vitest';
import { createCarbonTraceAccumulator, extractCarbonMetrics, findCarbonTrace } from '../../src/index';

const trace = { emissions_g_co2: 0.5, energy_consumed_wh: 2, measured: true };

describe('where the trace is found', () => {
  it.each([
    ['a chat completion (top level)', { id: 'c', choices: [], x_carbon_trace: trace }],
    ['an embeddings body (top level)', { object: 'list', data: [], usage: { prompt_tokens: 3, total_tokens: 3 }, x_carbon_trace: trace }],
    ['an Ollama final object', { model: 'm', done: true, eval_count: 4, x_carbon_trace: trace }],
    ['an Anthropic message_delta event', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 4 }, x_carbon_trace: trace }],
    ['a Responses response.completed event (inside its response)', { type: 'response.completed', sequence_number: 9, response: { id: 'r', object: 'response', x_carbon_trace: trace } }],
    ['a Responses response.incomplete event (max_output_tokens reached)', { type: 'response.incomplete', response: { id: 'r', status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, x_carbon_trace: trace } }],
  ])('%s', (_name, body) => {
    const onWarning = vi.fn();
    expect(extractCarbonMetrics(body, { onWarning })?.gwpKgco2eq).toBeCloseTo(0.0005, 12);
    expect(extractCarbonMetrics(JSON.stringify(body), { onWarning })?.energyKwh).toBeCloseTo(0.002, 12);
    expect(onWarning).not.toHaveBeenCalled();
  });

  it('only the Responses events that end the response are looked into, and only their response', () => {
    // Another event type that happens to wrap a response is not the final one: its trace would be early.
    expect(findCarbonTrace({ type: 'response.in_progress', response: { x_carbon_trace: trace } })).toBeUndefined();
    expect(findCarbonTrace({ type: 'response.created', response: { x_carbon_trace: trace } })).toBeUndefined();
    expect(findCarbonTrace({ type: 'response.completed', item: { x_carbon_trace: trace } })).toBeUndefined();
    expect(findCarbonTrace({ type: 'response.completed', response: null })).toBeUndefined();
    expect(findCarbonTrace({ type: 'response.completed', response: [trace] })).toBeUndefined();
    expect(findCarbonTrace(JSON.parse('{"type":"response.completed","response":{"__proto__":{"x_carbon_trace":{"energy_consumed_wh":1}}}}'))).toBeUndefined();
    // The top level wins over a wrapped one.
    expect(findCarbonTrace({ type: 'response.completed', x_carbon_trace: 'top', response: { x_carbon_trace: 'inner' } })).toBe('top');
  });
});

describe('an undefined comes with a warning', () => {
  it('extractCarbonMetrics: no trace, and a trace with no usable figure, each say so', () => {
    const onWarning = vi.fn();
    expect(extractCarbonMetrics({ id: 'c', choices: [] }, { onWarning })).toBeUndefined();
    expect(extractCarbonMetrics(null, { onWarning })).toBeUndefined();
    expect(extractCarbonMetrics({ x_carbon_trace: { energy_consumed_wh: -1 } }, { onWarning })).toBeUndefined();
    expect(extractCarbonMetrics({ x_carbon_trace: 'garbage' }, { onWarning })).toBeUndefined();
    const messages = onWarning.mock.calls.map(([m]) => String(m));
    expect(messages[0]).toMatch(/^no x_carbon_trace in the response: no carbon metrics for it\. .*proxy/);
    expect(messages[1]).toBe(messages[0]);
    expect(messages[2]).toMatch(/x_carbon_trace has no usable figure \(no usable figure: energy_consumed_wh dropped: negative \(-1\)\)/);
    expect(messages[3]).toMatch(/has no usable figure \(not a trace object\)/);
  });

  it('by default on the console, each distinct warning once per process; false silences it', () => {
    const console_ = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      extractCarbonMetrics({ id: 'a' });
      extractCarbonMetrics({ id: 'b' });
      expect(console_.mock.calls.filter(([m]) => String(m).includes('no x_carbon_trace in the response:')).length).toBeLessThanOrEqual(1);
      console_.mockClear();
      extractCarbonMetrics({ id: 'c' }, { onWarning: false });
      createCarbonTraceAccumulator({ onWarning: false }).build();
      expect(console_).not.toHaveBeenCalled();
    } finally {
      console_.mockRestore();
    }
  });

  it('a traced response warns about nothing it could read', () => {
    const onWarning = vi.fn();
    extractCarbonMetrics({ x_carbon_trace: trace }, { onWarning });
    const acc = createCarbonTraceAccumulator({ onWarning });
    acc.add({ choices: [{ delta: { content: 'x' } }] });
    acc.add({ choices: [{ delta: {}, finish_reason: 'stop' }], x_carbon_trace: trace });
    expect(acc.build()?.measured).toBe(true);
    expect(onWarning).not.toHaveBeenCalled();
  });

  it('the accumulator warns once, when built, not on every chunk', () => {
    const onWarning = vi.fn();
    const acc = createCarbonTraceAccumulator({ onWarning });
    for (let i = 0; i < 50; i++) acc.add({ choices: [{ delta: { content: 'x' } }] });
    expect(onWarning).not.toHaveBeenCalled();
    expect(acc.build()).toBeUndefined();
    expect(acc.build()).toBeUndefined();
    expect(acc.problem).toBeUndefined();
    expect(onWarning).toHaveBeenCalledTimes(1);
    expect(String(onWarning.mock.calls[0]![0])).toMatch(/^no x_carbon_trace in the response/);

    const broken = createCarbonTraceAccumulator({ onWarning });
    broken.add({ x_carbon_trace: { energy_consumed_wh: 'NaN' } });
    expect(broken.build()).toBeUndefined();
    expect(broken.problem).toMatch(/no usable figure/);
    expect(String(onWarning.mock.calls[1]![0])).toMatch(/has no usable figure/);
  });
});
