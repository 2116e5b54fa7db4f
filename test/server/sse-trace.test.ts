/**
 * The event tracer, byte by byte: however the upstream's bytes are cut into chunks, the client
 * gets the same bytes (plus one trace), and tokens are counted by one rule on every path.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countTokens, EventTracer } from '../../src/server/wires/sse-trace';

const NUM_RUNS = Number(process.env.CARBON_TRACE_FUZZ_RUNS ?? 200);
const data = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;

/** Runs bytes through a tracer in the given pieces; returns what the client got, and the tokens counted. */
function run(pieces: Buffer[], trace: Record<string, unknown> | undefined = { energy_consumed_wh: 1 }) {
  let tokens = 0;
  const usage: unknown[] = [];
  const tracer = new EventTracer({ tokens: (n) => void (tokens += n), usage: (u) => void usage.push(u) });
  const out: Buffer[] = [];
  for (const piece of pieces) {
    const result = tracer.push(piece);
    out.push(...result.out);
    if (result.done) out.push(...tracer.complete(trace));
  }
  if (!tracer.isComplete) out.push(...tracer.complete(trace));
  return { text: Buffer.concat(out).toString('utf8'), tokens, usage };
}

/** Cuts `bytes` at the given fractions. */
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

const chatStream = [
  data({ id: 'c', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }),
  data({ id: 'c', choices: [{ index: 0, delta: { reasoning_content: 'think' }, finish_reason: null }] }),
  data({ id: 'c', choices: [{ index: 0, delta: { content: 'Bonjour, ça va ? {"content":"x"}' }, finish_reason: null }] }),
  data({ id: 'c', choices: [{ index: 1, delta: { content: 'second choice' }, finish_reason: null }] }),
  data({ id: 'c', choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"content": "a"}' } }] }, finish_reason: null }] }),
  ': a comment\r\n\r\n',
  data({ id: 'c', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
  data({ id: 'c', choices: [{ index: 1, delta: { content: 'late' }, finish_reason: 'length' }] }),
  data({ id: 'c', choices: [], usage: { prompt_tokens: 3, completion_tokens: 6 } }),
  ': keep-alive\n\n',
  'data: [DONE]\n\n',
].join('');

describe('countTokens: one rule', () => {
  it.each([
    ['chat content', data({ choices: [{ delta: { content: 'Hi' } }] }), 1],
    ['empty content', data({ choices: [{ delta: { content: '' } }] }), 0],
    ['reasoning_content', data({ choices: [{ delta: { reasoning_content: 'hm' } }] }), 1],
    ['reasoning (OpenRouter, vLLM ≥ 0.10)', data({ choices: [{ delta: { reasoning: 'hm' } }] }), 1],
    ['legacy /v1/completions text', data({ choices: [{ text: ' world', index: 0 }] }), 1],
    ['tool call delta', data({ choices: [{ delta: { tool_calls: [{ index: 0 }] } }] }), 1],
    ['n = 2 in one chunk', data({ choices: [{ index: 0, delta: { content: 'a' } }, { index: 1, delta: { content: 'b' } }] }), 2],
    ['content inside a string does not count', data({ choices: [{ delta: { content: '"content":"x"' } }] }), 1],
    ['null content', data({ choices: [{ delta: { content: null } }] }), 0],
    ['spaces after the colon (Python json.dumps)', 'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n', 1],
  ])('%s', (_name, event, expected) => {
    expect(countTokens(event)).toBe(expected);
  });
});

describe('EventTracer', () => {
  it('adds the trace once, to the last chunk before [DONE]; every other byte as it came', () => {
    const { text, tokens, usage } = run([Buffer.from(chatStream)]);
    const traced = text.split(/(?<=\n\n)/).filter((e) => e.includes('x_carbon_trace'));
    expect(traced).toHaveLength(1);
    expect(traced[0]).toContain('"usage"');
    expect(text.replace(',"x_carbon_trace":{"energy_consumed_wh":1}', '')).toBe(chatStream);
    expect(tokens).toBe(5); // reasoning, content, second choice, tool call, late — not the empty first delta
    expect(usage).toEqual([{ prompt_tokens: 3, completion_tokens: 6 }]);
  });

  it('the same bytes and the same token count however the stream is cut into chunks', () => {
    const bytes = Buffer.from(chatStream);
    const whole = run([bytes]);
    const byEvent = run(chatStream.split(/(?<=\n\n)/).map((e) => Buffer.from(e)));
    expect(byEvent).toEqual(whole);
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }), (at) => {
        expect(run(cut(bytes, at))).toEqual(whole);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('CRLF and CR line ends, and a CR at the very end of a chunk', () => {
    const crlf = chatStream.replace(/\n/g, '\r\n');
    const cr = chatStream.replace(/\n/g, '\r');
    for (const stream of [crlf, cr]) {
      const bytes = Buffer.from(stream);
      const whole = run([bytes]);
      expect(whole.text.split('x_carbon_trace').length - 1).toBe(1);
      expect(whole.tokens).toBe(5);
      for (let i = 1; i < bytes.length; i += 7) expect(run([bytes.subarray(0, i), bytes.subarray(i)])).toEqual(whole);
    }
  });

  it('a stream cut before [DONE]: the held chunk goes out with the trace at the end', () => {
    const upToFinish = chatStream.slice(0, chatStream.indexOf(': keep-alive'));
    const { text } = run([Buffer.from(upToFinish)]);
    expect(text.split('x_carbon_trace').length - 1).toBe(1);
  });

  it('a stream of chunks that never finish: nothing held, nothing added', () => {
    const plain = data({ choices: [{ delta: { content: 'a' } }] }).repeat(3);
    expect(run([Buffer.from(plain)]).text).toBe(plain);
  });
});
