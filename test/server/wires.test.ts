/**
 * The wires, one by one, without a network: which requests each claims, the usage each reads, and
 * each stream tracer byte by byte — however the upstream's bytes are cut into chunks, the client
 * gets the same bytes plus one trace, on the event or line DESIGN.md §8 names.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { anthropicEvents } from '../../src/server/wires/anthropic';
import { FrameTracer, type FrameRules } from '../../src/server/wires/frame-tracer';
import { answerFraming, WIRES, wireFor } from '../../src/server/wires/index';
import { readMembers, spliceTraceInto } from '../../src/server/wires/json-splice';
import { llamaCppEvents } from '../../src/server/wires/llamacpp';
import { ollamaLines } from '../../src/server/wires/ollama';
import { responsesEvents } from '../../src/server/wires/responses';
import { EventTracer } from '../../src/server/wires/sse-trace';
import { tgiEvents } from '../../src/server/wires/tgi';
import type { WireUsage } from '../../src/server/wires/wire';

const NUM_RUNS = Number(process.env.CARBON_TRACE_FUZZ_RUNS ?? 150);
const TRACE = { energy_consumed_wh: 1, note: 'Électricité' };
// What the tracer writes: the trace as ASCII JSON (non-ASCII escaped).
const TRACE_JSON = '{"energy_consumed_wh":1,"note":"\\u00c9lectricit\\u00e9"}';
const sse = (o: unknown, event?: string) => `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(o)}\n\n`;
const line = (o: unknown) => `${JSON.stringify(o)}\n`;

/** Runs bytes through a tracer in the given pieces: what the client got, the tokens counted, the last usage, whether `done` came. */
function run(rules: FrameRules, pieces: Buffer[], trace: Record<string, unknown> | null = TRACE) {
  let tokens = 0;
  const usage: WireUsage = {};
  const tracer = new FrameTracer(rules, { tokens: (n) => void (tokens += n), usage: (u) => void Object.assign(usage, u) });
  const out: Buffer[] = [];
  let doneAt: number | undefined;
  let placed = false;
  let upstreamTraced = false;
  pieces.forEach((piece, i) => {
    const result = tracer.push(piece);
    out.push(...result.out);
    if (result.done && doneAt === undefined) {
      doneAt = i;
      placed = tracer.placesTrace;
      upstreamTraced = tracer.upstreamTraced;
      out.push(...tracer.complete(trace ?? undefined));
    }
  });
  if (!tracer.isComplete) {
    placed = tracer.placesTrace;
    upstreamTraced = tracer.upstreamTraced;
    out.push(...tracer.complete(trace ?? undefined));
  }
  return { text: Buffer.concat(out).toString('utf8'), tokens, usage, done: doneAt !== undefined, placed, upstreamTraced };
}

function cut(bytes: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((f) => Math.floor(f * bytes.length)))].filter((p) => p > 0 && p < bytes.length).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    pieces.push(bytes.subarray(from, p));
    from = p;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}

const responsesStream = [
  sse({ type: 'response.created', sequence_number: 0, response: { id: 'r', created_at: 1, model: 'm', status: 'in_progress', output: [] } }, 'response.created'),
  sse({ type: 'response.output_text.delta', sequence_number: 1, item_id: 'i', output_index: 0, content_index: 0, delta: 'Bonjour, ça va ? "type":"response.completed"' }, 'response.output_text.delta'),
  ': keep-alive\n\n',
  sse({ type: 'response.output_text.delta', sequence_number: 2, item_id: 'i', output_index: 0, content_index: 0, delta: ' oui' }, 'response.output_text.delta'),
  sse({ type: 'response.output_text.done', sequence_number: 3, item_id: 'i', output_index: 0, content_index: 0, text: 'Bonjour, ça va ? oui' }, 'response.output_text.done'),
  // The response object is not the event's last member: the trace goes inside it all the same.
  sse({ type: 'response.completed', response: { id: 'r', status: 'completed', output: [{ type: 'message', content: [{ type: 'output_text', text: 'Bonjour' }] }], usage: { input_tokens: 7, output_tokens: 2, total_tokens: 9 } }, sequence_number: 4 }, 'response.completed'),
].join('');

const anthropicStream = [
  sse({ type: 'message_start', message: { id: 'msg', type: 'message', role: 'assistant', content: [], model: 'c', usage: { input_tokens: 11, output_tokens: 1 } } }, 'message_start'),
  sse({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, 'content_block_start'),
  sse({ type: 'ping' }, 'ping'),
  sse({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Salut ' } }, 'content_block_delta'),
  sse({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '{"type":"message_delta"}' } }, 'content_block_delta'),
  sse({ type: 'content_block_stop', index: 0 }, 'content_block_stop'),
  sse({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 4 } }, 'message_delta'),
  // A ping between the delta and the stop waits with the held delta; it does not release it.
  sse({ type: 'ping' }, 'ping'),
  sse({ type: 'message_stop' }, 'message_stop'),
].join('');

const ollamaStream = [
  line({ model: 'l', created_at: 't', message: { role: 'assistant', content: 'Hé ' }, done: false }),
  line({ model: 'l', created_at: 't', message: { role: 'assistant', content: '"done":true' }, done: false }),
  line({ model: 'l', created_at: 't', message: { role: 'assistant', content: '' }, done_reason: 'stop', done: true, prompt_eval_count: 26, eval_count: 3 }),
].join('');

const tgiStream = [
  `data:${JSON.stringify({ index: 1, token: { id: 1, text: 'Hé', logprob: -1, special: false }, generated_text: null, details: null })}\n\n`,
  `data:${JSON.stringify({ index: 2, token: { id: 2, text: ' "generated_text":"x"', logprob: -1, special: false }, generated_text: null, details: null })}\n\n`,
  `data:${JSON.stringify({ index: 3, token: { id: 3, text: '!', logprob: -1, special: false }, generated_text: 'Hé "generated_text":"x"!', details: { finish_reason: 'eos_token', generated_tokens: 3, seed: null, input_length: 8 } })}\n\n`,
].join('');

const llamaCppStream = [
  sse({ index: 0, content: 'Hé', stop: false, id_slot: 0 }),
  sse({ index: 0, content: ' "stop":true', stop: false, id_slot: 0 }),
  sse({ index: 0, content: '', stop: true, id_slot: 0, model: 'x', tokens_predicted: 2, tokens_evaluated: 9, timings: { predicted_n: 2 } }),
].join('');

type Case = { name: string; rules: FrameRules; stream: string; carrier: RegExp; tokens: number; usage: WireUsage; done: boolean; traceInside?: string };
const CASES: Case[] = [
  { name: 'Responses API', rules: responsesEvents, stream: responsesStream, carrier: /^event: response\.completed/, tokens: 2, usage: { promptTokens: 7, completionTokens: 2 }, done: true, traceInside: 'response' },
  { name: 'Anthropic Messages', rules: anthropicEvents, stream: anthropicStream, carrier: /"message_delta"/, tokens: 2, usage: { promptTokens: 11, completionTokens: 4 }, done: true },
  { name: 'Ollama NDJSON', rules: ollamaLines, stream: ollamaStream, carrier: /"done":true/, tokens: 2, usage: { promptTokens: 26, completionTokens: 3 }, done: false },
  { name: 'TGI', rules: tgiEvents, stream: tgiStream, carrier: /"details":\{/, tokens: 3, usage: { promptTokens: 8, completionTokens: 3 }, done: false },
  { name: 'llama.cpp', rules: llamaCppEvents, stream: llamaCppStream, carrier: /"stop":true,/, tokens: 2, usage: { promptTokens: 9, completionTokens: 2 }, done: false },
];

/** The frames (SSE events or NDJSON lines) of a text. */
const framesOf = (text: string, rules: FrameRules) => (rules.framing === 'sse' ? text.split(/(?<=\n\n)/) : text.split(/(?<=\n)/));

describe.each(CASES)('$name stream', ({ rules, stream, carrier, tokens, usage, done, traceInside }) => {
  it('the trace once, on the event DESIGN §8 names, parseable; every other byte as it came; usage and tokens read', () => {
    const result = run(rules, [Buffer.from(stream)]);
    const traced = framesOf(result.text, rules).filter((frame) => frame.includes('x_carbon_trace'));
    expect(traced).toHaveLength(1);
    expect(traced[0]).toMatch(carrier);
    const data = JSON.parse(rules.framing === 'sse' ? traced[0]!.split('\n').find((l) => l.startsWith('data:'))!.replace(/^data: ?/, '') : traced[0]!);
    expect((traceInside ? data[traceInside] : data).x_carbon_trace).toEqual(TRACE);
    expect(result.text.replace(`,"x_carbon_trace":${TRACE_JSON}`, '')).toBe(stream);
    expect(result).toMatchObject({ tokens, usage, done, placed: true, upstreamTraced: false });
  });

  it('the same bytes, tokens and usage however the stream is cut into chunks', () => {
    const bytes = Buffer.from(stream);
    const whole = run(rules, [bytes]);
    expect(run(rules, framesOf(stream, rules).map((f) => Buffer.from(f)))).toEqual(whole);
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }), (at) => {
        const pieces = run(rules, cut(bytes, at));
        expect(pieces.text).toBe(whole.text);
        expect(pieces.tokens).toBe(whole.tokens);
        expect(pieces.usage).toEqual(whole.usage);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('CRLF line ends, split at every byte', () => {
    const crlf = stream.replace(/\n/g, '\r\n');
    const bytes = Buffer.from(crlf);
    const whole = run(rules, [bytes]);
    expect(whole.text.split('x_carbon_trace').length - 1).toBe(1);
    expect(whole.text.replace(`,"x_carbon_trace":${TRACE_JSON}`, '')).toBe(crlf);
    for (let i = 1; i < bytes.length; i += 5) expect(run(rules, [bytes.subarray(0, i), bytes.subarray(i)]).text).toBe(whole.text);
  });

  it("the upstream's own trace wins: the carrier goes as it came", () => {
    const marker = traceInside ? `"${traceInside}":{` : rules.framing === 'ndjson' ? '{' : stream.includes('data: {') ? 'data: {' : 'data:{';
    const withOwn = framesOf(stream, rules)
      .map((frame) => (carrier.test(frame) ? frame.replace(marker, `${marker}"x_carbon_trace":{"energy_consumed_wh":9},`) : frame))
      .join('');
    expect(withOwn).not.toBe(stream);
    const result = run(rules, [Buffer.from(withOwn)]);
    expect(result.text).toBe(withOwn);
    expect(result).toMatchObject({ placed: false, upstreamTraced: true });
  });

  it('cut before its carrier: nothing held back, nothing added', () => {
    const frames = framesOf(stream, rules);
    const before = frames.slice(0, frames.findIndex((f) => carrier.test(f))).join('');
    const result = run(rules, [Buffer.from(before)]);
    expect(result.text).toBe(before);
    expect(result.placed).toBe(false);
  });

  it('no trace to give: the stream as it came', () => {
    expect(run(rules, [Buffer.from(stream)], null).text).toBe(stream);
  });
});

describe('chat completions (EventTracer): the upstream\'s own trace on the finish chunk', () => {
  it('a usage chunk after it gets no second trace', () => {
    const text = [
      sse({ id: 'c', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], x_carbon_trace: { energy_consumed_wh: 9 } }),
      sse({ id: 'c', choices: [], usage: { prompt_tokens: 1, completion_tokens: 2 } }),
      'data: [DONE]\n\n',
    ].join('');
    const tracer = new EventTracer({ tokens: () => {}, usage: () => {} });
    const { out, done } = tracer.push(Buffer.from(text));
    expect(done).toBe(true);
    expect(tracer.upstreamTraced).toBe(true);
    expect(tracer.placesTrace).toBe(false);
    expect(Buffer.concat([...out, ...tracer.complete(TRACE)]).toString()).toBe(text);
  });
});

describe('FrameTracer limits', () => {
  it('a stream with no boundary for more than its limit passes as it comes, untraced', () => {
    const rules: FrameRules = { ...ollamaLines, maxFrameBytes: 1024 };
    const endless = Buffer.from(`{"done":true,"pad":"${'x'.repeat(5000)}`);
    const tracer = new FrameTracer(rules, { tokens: () => {}, usage: () => {} });
    const out = [...tracer.push(endless.subarray(0, 600)).out, ...tracer.push(endless.subarray(600)).out];
    expect(tracer.gaveUp).toBe(true);
    out.push(...tracer.complete(TRACE));
    expect(Buffer.concat(out).toString()).toBe(endless.toString());
  });

  it('a carrier whose data is not JSON, or is an array, is not held', () => {
    const text = 'data: {"stop": true,\n\ndata: [{"stop":true}]\n\n';
    expect(run(llamaCppEvents, [Buffer.from(text)]).text).toBe(text);
  });

  it('a second carrier releases the first as it came (only the last gets the trace)', () => {
    const text = line({ done: true, eval_count: 1 }) + line({ done: true, eval_count: 2 });
    const result = run(ollamaLines, [Buffer.from(text)]);
    expect(result.text.split('\n')[0]).toBe(JSON.stringify({ done: true, eval_count: 1 }));
    expect(result.text.split('\n')[1]).toContain('x_carbon_trace');
    expect(result.usage.completionTokens).toBe(2);
  });

  it('bytes after the last event (Responses) wait, then follow it', () => {
    const text = `${responsesStream}: after\n\n`;
    const result = run(responsesEvents, [Buffer.from(text)]);
    expect(result.text.endsWith(': after\n\n')).toBe(true);
    expect(result.text.replace(`,"x_carbon_trace":${TRACE_JSON}`, '')).toBe(text);
  });

  it('bad counts are not usage: negative, fractional, strings, null', () => {
    const text = line({ done: true, prompt_eval_count: -1, eval_count: 2.5 }) + '';
    expect(run(ollamaLines, [Buffer.from(text)]).usage).toEqual({});
    const nulls = sse({ type: 'message_delta', usage: { output_tokens: null, input_tokens: '3' } }) + sse({ type: 'message_stop' });
    expect(run(anthropicEvents, [Buffer.from(nulls)]).usage).toEqual({});
  });
});

describe('the table of wires', () => {
  it.each([
    ['POST', '/v1/chat/completions', 'chat', 'chat'],
    ['POST', '/openai/deployments/gpt/chat/completions/', 'chat', 'chat'],
    ['POST', '/v1/completions', 'chat', 'chat'],
    ['POST', '/completions', 'llamacpp', 'chat'],
    ['POST', '/completion', 'llamacpp', 'chat'],
    ['POST', '/v1/responses', 'responses', 'chat'],
    ['POST', '/v1/embeddings', 'embeddings', 'embedding'],
    ['POST', '/embed', 'embeddings', 'embedding'],
    ['POST', '/v1/rerank', 'embeddings', 'rerank'],
    ['POST', '/rerank', 'embeddings', 'rerank'],
    ['POST', '/v2/rerank', 'embeddings', 'rerank'],
    ['POST', '/v1/score', 'embeddings', 'rerank'],
    ['POST', '/api/chat', 'ollama', 'chat'],
    ['POST', '/api/generate', 'ollama', 'chat'],
    ['POST', '/api/embed', 'ollama', 'embedding'],
    ['POST', '/api/embeddings', 'ollama', 'embedding'],
    ['POST', '/generate', 'tgi', 'chat'],
    ['POST', '/generate_stream', 'tgi', 'chat'],
    ['POST', '/v1/messages', 'anthropic', 'chat'],
  ])('%s %s → %s (%s)', (method, path, name, kind) => {
    const wire = wireFor(method, path);
    expect(wire?.name).toBe(name);
    expect(wire?.kind(path)).toBe(kind);
  });

  it.each([
    ['GET', '/v1/chat/completions'],
    ['POST', '/v1/models'],
    ['POST', '/v1/messages/count_tokens'],
    ['POST', '/tokenize'],
    ['POST', '/__proto__'],
    ['POST', '/api/pull'],
  ])('%s %s → no wire (booked, never traced)', (method, path) => {
    expect(wireFor(method, path)).toBeUndefined();
  });

  it('every wire has a name of its own and says what its JSON usage is', () => {
    expect(new Set(WIRES.map((w) => w.name)).size).toBe(WIRES.length);
    for (const wire of WIRES) expect(wire.usageOf(Object.create(null))).toEqual({});
  });

  it.each([
    ['text/event-stream; charset=utf-8', 'sse'],
    ['application/x-ndjson', 'ndjson'],
    ['application/json; charset=utf-8', 'json'],
    ['text/html', undefined],
  ])('answerFraming(%s) = %s', (type, framing) => {
    expect(answerFraming(type)).toBe(framing);
  });
});

describe('JSON bodies', () => {
  it('readMembers parses only what it is asked, on any JSON object; arrays and garbage are not objects', () => {
    const body = Buffer.from('{"eval_count":3,"context":[1,2],"__proto__":{"x":1},"prompt_eval_count":"7","x_carbon_trace":{}}');
    const read = readMembers(body, ['eval_count', 'prompt_eval_count', '__proto__']);
    expect(read.object).toBe(true);
    expect(read.traced).toBe(true);
    expect(read.members.eval_count).toBe(3);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(readMembers(Buffer.from('[[0.1,0.2]]'), ['usage'])).toMatchObject({ object: false, traced: false });
    expect(readMembers(Buffer.from('{"usage":'), ['usage'])).toMatchObject({ object: false });
  });

  it('spliceTraceInto puts the trace inside the named member, every other byte as it was', () => {
    const body = Buffer.from('{"type":"response.completed" , "response" : { "id" : "r" } ,"sequence_number":4}');
    expect(spliceTraceInto(body, '{"a":1}', 'response')!.toString()).toBe('{"type":"response.completed" , "response" : { "id" : "r" ,"x_carbon_trace":{"a":1}} ,"sequence_number":4}');
    expect(spliceTraceInto(Buffer.from('{"response":[]}'), '{}', 'response')).toBeUndefined();
    expect(spliceTraceInto(Buffer.from('{"other":{}}'), '{}', 'response')).toBeUndefined();
  });
});
