/**
 * The wires, one by one, without a network: which requests each claims, the usage each reads, and
 * each stream tracer byte by byte — however the upstream's bytes are cut into chunks, the client
 * gets the same bytes plus one trace, on the event or line DESIGN.md §8 names.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { anthropicEvents, messagesUsage } from '../../src/server/wires/anthropic';
import { FrameTracer, type FrameRules } from '../../src/server/wires/frame-tracer';
import { answerFraming, WIRES, wireFor } from '../../src/server/wires/index';
import { readMembers, spliceTraceInto } from '../../src/server/wires/json-splice';
import { llamaCppEvents } from '../../src/server/wires/llamacpp';
import { ollamaLines } from '../../src/server/wires/ollama';
import { responsesEvents } from '../../src/server/wires/responses';
import { EventTracer } from '../../src/server/wires/sse-trace';
import { tgiEvents } from '../../src/server/wires/tgi';
import { MAX_HELD_TAIL_BYTES, type StreamTracer, type WireUsage } from '../../src/server/wires/wire';

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
    ['POST', '/v1/messages/', 'anthropic', 'chat'],
    ['POST', '/responses', 'responses', 'chat'],
    ['POST', '/generate_stream/', 'tgi', 'chat'],
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
    // Paths that only end like a wire's: OpenAI Assistants, KoboldCpp, another resource's responses.
    ['POST', '/v1/threads/thread_1/messages'],
    ['POST', '/messages'],
    ['POST', '/api/v1/generate'],
    ['POST', '/v1/evals/e_1/responses'],
    ['POST', '/x/api/chat'],
    ['POST', '/v1/completion'],
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
    ['application/jsonl', 'ndjson'],
    ['application/x-jsonlines; charset=utf-8', 'ndjson'],
    ['application/stream+json', 'ndjson'],
    ['application/json-seq', 'json-seq'],
    ['application/json; charset=utf-8', 'json'],
    ['application/problem+json', 'json'],
    ['text/html', undefined],
    ['', undefined],
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

/** Pushes `pieces`, and after each the most bytes the tracer held (in minus out); then completes. */
function heldAtMost(tracer: StreamTracer, pieces: Buffer[]): { text: string; maxHeld: number } {
  const out: Buffer[] = [];
  let inBytes = 0;
  let outBytes = 0;
  let maxHeld = 0;
  for (const piece of pieces) {
    inBytes += piece.length;
    const result = tracer.push(piece);
    out.push(...result.out);
    outBytes += result.out.reduce((n, b) => n + b.length, 0);
    maxHeld = Math.max(maxHeld, inBytes - outBytes);
    if (result.done) out.push(...tracer.complete(TRACE));
  }
  if (!tracer.isComplete) out.push(...tracer.complete(TRACE));
  return { text: Buffer.concat(out).toString('utf8'), maxHeld };
}

describe('what a tracer holds after its carrier is bounded', () => {
  const hooks = { tokens: () => undefined, usage: () => undefined };
  const pings = (frame: string, bytes: number) => Array.from({ length: Math.ceil(bytes / 4096) }, () => Buffer.from(frame.repeat(Math.ceil(4096 / frame.length))));

  it.each([
    ['Anthropic: pings after message_delta', () => new FrameTracer(anthropicEvents, hooks), sse({ type: 'message_delta', usage: { output_tokens: 2 } }, 'message_delta'), sse({ type: 'ping' }, 'ping'), sse({ type: 'message_stop' }, 'message_stop')],
    ['llama.cpp: comments after "stop": true', () => new FrameTracer(llamaCppEvents, hooks), sse({ content: '', stop: true, tokens_predicted: 1 }), ': keep-alive\n\n', ''],
    ['Ollama: blank lines after "done": true', () => new FrameTracer(ollamaLines, hooks), line({ done: true, eval_count: 1 }), '\n', ''],
    ['chat: comments after the finish chunk', () => new EventTracer({ tokens: () => undefined, usage: () => undefined }), sse({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }), ': keep-alive\n\n', 'data: [DONE]\n\n'],
  ] as const)('%s: beyond the bound the carrier goes untraced, every byte in order', (_name, make, carrier, filler, end) => {
    const tracer = make();
    const pieces = [Buffer.from(carrier), ...pings(filler, 1024 * 1024), Buffer.from(end)];
    const { text, maxHeld } = heldAtMost(tracer, pieces);
    expect(maxHeld).toBeLessThanOrEqual(carrier.length + MAX_HELD_TAIL_BYTES + 4096);
    expect(text).toBe(Buffer.concat(pieces).toString('utf8'));
    expect(tracer.letGo).toBe(true);
    expect(tracer.placesTrace).toBe(false);
  });

  it('a later carrier is held again, and gets the trace', () => {
    const tracer = new FrameTracer(ollamaLines, hooks);
    const pieces = [Buffer.from(line({ done: true, eval_count: 1 })), ...pings('\n', 128 * 1024), Buffer.from(line({ done: true, eval_count: 2 }))];
    const { text } = heldAtMost(tracer, pieces);
    expect(text.split('x_carbon_trace').length - 1).toBe(1);
    expect(tracer.letGo).toBe(false);
  });
});

describe("the upstream's own trace, wherever it is", () => {
  it('on an event after the carrier (Anthropic message_stop): ours stays out', () => {
    const text = sse({ type: 'message_delta', usage: { output_tokens: 2 } }, 'message_delta') + sse({ type: 'message_stop', x_carbon_trace: { energy_consumed_wh: 9 } }, 'message_stop');
    for (let cut = 1; cut < text.length; cut += 7) {
      const result = run(anthropicEvents, [Buffer.from(text.slice(0, cut)), Buffer.from(text.slice(cut))]);
      expect(result.text).toBe(text);
      expect(result).toMatchObject({ placed: false, upstreamTraced: true });
    }
  });

  it('on a frame that passed long before (fast path): ours stays out', () => {
    const text = line({ message: { content: 'a' }, done: false, x_carbon_trace: { energy_consumed_wh: 9 } }) + line({ done: true, eval_count: 1 });
    const result = run(ollamaLines, [Buffer.from(text)]);
    expect(result.text).toBe(text);
    expect(result.upstreamTraced).toBe(true);
  });

  it('named only inside a string, it is not a trace', () => {
    const text = line({ message: { content: '"x_carbon_trace": {}' }, done: false }) + line({ done: true, eval_count: 1 });
    expect(run(ollamaLines, [Buffer.from(text)])).toMatchObject({ placed: true, upstreamTraced: false });
  });

  it.each([
    ['FrameTracer (Responses)', () => new FrameTracer(responsesEvents, { tokens: () => undefined, usage: () => undefined }), responsesStream],
    ['EventTracer (chat)', () => new EventTracer({ tokens: () => undefined, usage: () => undefined }), `${sse({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}data: [DONE]\n\n`],
  ] as const)('%s: after the last event, when ours is placed, it is told (the name cut between chunks too)', (_name, make, stream) => {
    const tracer = make();
    const { done } = tracer.push(Buffer.from(stream));
    expect(done).toBe(true);
    expect(tracer.placesTrace).toBe(true);
    tracer.complete(TRACE);
    expect(tracer.upstreamTracedLate).toBe(false);
    tracer.push(Buffer.from('data: {"x_carbon_'));
    expect(tracer.upstreamTracedLate).toBe(false);
    tracer.push(Buffer.from('trace":{}}\n\n'));
    expect(tracer.upstreamTracedLate).toBe(true);
  });
});

describe('tokens', () => {
  it.each([
    [{ input_tokens: 3, cache_read_input_tokens: 4000, cache_creation_input_tokens: 20, output_tokens: 5 }, { promptTokens: 4023, completionTokens: 5 }],
    [{ input_tokens: 3, cache_read_input_tokens: null, cache_creation_input_tokens: null, output_tokens: 5 }, { promptTokens: 3, completionTokens: 5 }],
    [{ input_tokens: 3, cache_read_input_tokens: -1, output_tokens: 5 }, { completionTokens: 5 }],
    [{ input_tokens: 3, cache_read_input_tokens: '4000', output_tokens: 5 }, { completionTokens: 5 }],
    [{ cache_read_input_tokens: 4000, output_tokens: 5 }, { completionTokens: 5 }],
    [{ input_tokens: Number.NaN, output_tokens: 1e300 }, {}],
    [undefined, {}],
  ])('Anthropic usage %j → %j', (usage, expected) => {
    expect(messagesUsage(usage as Record<string, unknown> | undefined)).toEqual(expected);
  });

  it("llama.cpp's prompt arrays: the sums, on the last carrier; a prompt without a count makes that sum unknown; each stream its own", () => {
    const stop = (index: unknown, evaluated: unknown, predicted: unknown) => sse({ index, content: '', stop: true, tokens_evaluated: evaluated, tokens_predicted: predicted });
    const two = stop(0, 100, 50) + stop(1, 7, 3);
    const result = run(llamaCppEvents, [Buffer.from(two)]);
    expect(result.usage).toEqual({ promptTokens: 107, completionTokens: 53 });
    expect(result.text.split('\n\n')[1]).toContain('"index":1');
    expect(result.text.split('\n\n')[1]).toContain('x_carbon_trace');
    // The same rules again: nothing carried over from the last stream.
    expect(run(llamaCppEvents, [Buffer.from(two)]).usage).toEqual({ promptTokens: 107, completionTokens: 53 });
    expect(run(llamaCppEvents, [Buffer.from(stop(0, 100, 50) + stop(1, null, 3))]).usage).toMatchObject({ promptTokens: undefined, completionTokens: 53 });
    // The same prompt's count again overrides, never adds.
    expect(run(llamaCppEvents, [Buffer.from(stop(0, 9, 2) + stop(0, 9, 2))]).usage).toEqual({ promptTokens: 9, completionTokens: 2 });
  });
});
