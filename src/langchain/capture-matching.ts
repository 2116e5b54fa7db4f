import { findCarbonTrace } from '../core/parse-carbon-trace';
import type { ResponseObserver } from './capture-fetch';

// Loosely typed on purpose: LangChain messages and OpenAI-compatible bodies are read defensively.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * One response observed by `handler.fetch`, filled as its bytes pass to the client.
 *
 * @example
 * ```ts
 * const capture = captures.begin(init.body);
 * capture?.observe(chunkData); // per SSE data line or NDJSON line, or once with the JSON body text
 * capture?.finish();
 * ```
 */
export class ResponseCapture implements ResponseObserver {
  /** The LLM runs this response may belong to, known when its request was sent. */
  readonly candidates: Set<string>;
  /** Whether one run alone carries the request's messages: then the response is that run's. */
  readonly exclusive: boolean;
  /** The last raw `x_carbon_trace` seen (the final figure comes last); `undefined` when none. */
  trace: unknown;
  /** The client has read the whole response: no more content or trace can arrive. */
  finished = false;
  /** The request failed or was not a completion: nothing to claim. */
  failed = false;
  private readonly choices = new Map<number, { text: string; tools: Map<number, { name: string; args: string }> }>();
  /** A whole JSON body, read only when a run claims it: the trace first, the content if asked. */
  private pendingJson: string | undefined;
  private pendingBody: Loose;

  constructor(candidates: Set<string>, matchedByMessages: boolean) {
    this.candidates = candidates;
    this.exclusive = matchedByMessages && candidates.size === 1;
  }

  /**
   * Takes one JSON document: a whole response body, or the data of one SSE event.
   * A whole body is kept as text and read only if a run claims it, so the client pays nothing.
   */
  observe(data: string, wholeBody = false): void {
    if (wholeBody) {
      this.pendingJson = data;
      return;
    }
    if (data === '[DONE]') {
      this.finished = true;
      return;
    }
    this.read(data);
  }

  finish(): void {
    this.finished = true;
  }

  fail(): void {
    this.failed = true;
  }

  /** The trace, once any deferred body has been read. */
  rawTrace(): unknown {
    if (this.pendingJson !== undefined) {
      this.pendingBody = parseObject(this.pendingJson);
      this.pendingJson = undefined;
      const trace = findCarbonTrace(this.pendingBody);
      if (trace !== undefined) this.trace = trace;
    }
    return this.trace;
  }

  /** What the model generated, in the shape {@link outputKey} gives a LangChain result. */
  contentKey(): string {
    this.rawTrace();
    if (this.pendingBody !== undefined) {
      this.readBody(this.pendingBody);
      this.pendingBody = undefined;
    }
    return [...this.choices.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, c]) => choiceKey(c.text, [...c.tools.values()].map((t) => toolKey(t.name, t.args))))
      .join('\u0004');
  }

  private read(text: string): void {
    const body = parseObject(text);
    if (body === undefined) return;
    const trace = findCarbonTrace(body);
    if (trace !== undefined) this.trace = trace;
    this.readBody(body);
    // The last document of its stream. Clients may stop reading here (the ollama client returns
    // on `done: true`, before the body ends): the run then ends with its own response finished,
    // which the content match relies on — else it could take a finished look-alike of another run.
    if (body.done === true || body.type === 'message_stop' || isResponsesEnd(body.type)) this.finished = true;
  }

  private readBody(body: Loose): void {
    if (Array.isArray(body.choices)) {
      for (const choice of body.choices) this.readChoice(choice);
    } else if (body.type === undefined && body.message !== null && typeof body.message === 'object') {
      // Ollama /api/chat: one object per line (or the whole body), each with a piece of the message.
      this.readOllamaMessage(body.message);
    } else if (body.type === undefined && typeof body.response === 'string') {
      // Ollama /api/generate.
      this.choice(0).text += body.response;
    } else if (body.type === 'message' && Array.isArray(body.content)) {
      // Anthropic Messages, a whole body.
      body.content.forEach((block: Loose, index: number) => this.readAnthropicBlock(index, block));
    } else if (body.type === 'content_block_start' || body.type === 'content_block_delta') {
      this.readAnthropicEvent(body);
    } else if (Array.isArray(body.output)) {
      this.readResponsesOutput(body.output);
    } else if (isResponsesEnd(body.type) && Array.isArray(body.response?.output)) {
      // The Responses API streams deltas, then repeats the whole output at the end — in
      // `response.incomplete` when it hit max_output_tokens, which carries the trace as well.
      this.choices.clear();
      this.readResponsesOutput(body.response.output);
      const inner = findCarbonTrace(body.response);
      if (inner !== undefined) this.trace = inner;
    }
  }

  private choice(index: unknown) {
    const key = typeof index === 'number' ? index : 0;
    let choice = this.choices.get(key);
    if (choice === undefined) this.choices.set(key, (choice = { text: '', tools: new Map() }));
    return choice;
  }

  private readChoice(raw: Loose): void {
    if (raw === null || typeof raw !== 'object') return;
    const choice = this.choice(raw.index);
    // A JSON body has `message`; a stream chunk has `delta` with pieces to append.
    const part = raw.message ?? raw.delta;
    if (part === null || typeof part !== 'object') return;
    if (typeof part.content === 'string') choice.text += part.content;
    if (!Array.isArray(part.tool_calls)) return;
    part.tool_calls.forEach((call: Loose, position: number) => {
      const index = typeof call?.index === 'number' ? call.index : position;
      let tool = choice.tools.get(index);
      if (tool === undefined) choice.tools.set(index, (tool = { name: '', args: '' }));
      if (typeof call?.function?.name === 'string') tool.name += call.function.name;
      if (typeof call?.function?.arguments === 'string') tool.args += call.function.arguments;
    });
  }

  private readOllamaMessage(message: Loose): void {
    const choice = this.choice(0);
    if (typeof message.content === 'string') choice.text += message.content;
    if (!Array.isArray(message.tool_calls)) return;
    // Ollama sends each tool call whole, its arguments an object.
    for (const call of message.tool_calls) {
      const args = call?.function?.arguments;
      choice.tools.set(choice.tools.size, { name: String(call?.function?.name ?? ''), args: typeof args === 'string' ? args : JSON.stringify(args ?? {}) });
    }
  }

  /** One content block of an Anthropic message: text, or a tool call (`tool_use`, its input an object). */
  private readAnthropicBlock(index: unknown, block: Loose): void {
    const choice = this.choice(0);
    if (block?.type === 'text' && typeof block.text === 'string') choice.text += block.text;
    else if (block?.type === 'tool_use') {
      const key = typeof index === 'number' ? index : choice.tools.size;
      // A stream starts the block with `input: {}` and sends the arguments as JSON pieces.
      const input = block.input !== null && typeof block.input === 'object' && Object.keys(block.input).length > 0 ? JSON.stringify(block.input) : '';
      choice.tools.set(key, { name: String(block.name ?? ''), args: input });
    }
  }

  private readAnthropicEvent(event: Loose): void {
    if (event.type === 'content_block_start') {
      this.readAnthropicBlock(event.index, event.content_block);
      return;
    }
    const delta = event.delta;
    const choice = this.choice(0);
    if (delta?.type === 'text_delta' && typeof delta.text === 'string') choice.text += delta.text;
    else if (delta?.type === 'input_json_delta' && typeof delta.partial_json === 'string' && typeof event.index === 'number') {
      const tool = choice.tools.get(event.index);
      if (tool !== undefined) tool.args += delta.partial_json;
    }
  }

  private readResponsesOutput(output: Loose[]): void {
    const choice = this.choice(0);
    for (const item of output) {
      if (item?.type === 'message' && Array.isArray(item.content)) {
        for (const part of item.content) if (typeof part?.text === 'string') choice.text += part.text;
      } else if (item?.type === 'function_call') {
        choice.tools.set(choice.tools.size, { name: String(item.name ?? ''), args: String(item.arguments ?? '') });
      }
    }
  }
}

/**
 * The outcome of looking for a run's response among the captures.
 *
 * @example
 * ```ts
 * const claim = captures.claim(runId, output);
 * if (claim.kind === 'found') parseCarbonTrace(claim.trace);
 * ```
 */
export type CaptureClaim =
  /** The run's response was observed; `trace` is its raw `x_carbon_trace`, `undefined` if it had none. */
  | { kind: 'found'; trace: unknown }
  /** `handler.fetch` saw no request this run could have sent. */
  | { kind: 'unobserved' }
  /** Several responses could be this run's and they do not all carry the same trace (or all none): it gets none. */
  | { kind: 'ambiguous'; responses: number };

type RunEntry = { key: string | undefined; captures: Set<ResponseCapture> };

// Bound for what a misbehaving caller could grow: responses no run ever claims.
const MAX_CAPTURES = 10_000;

/**
 * Ties the responses `handler.fetch` observes to the LLM runs that sent them — without trusting
 * response ids, which real servers reuse (Ollama), leave empty (TGI), omit, or change on every
 * chunk (some proxies).
 *
 * A request is tied to the open runs whose messages it carries. When one run alone could have
 * sent it, the response is that run's. When several could (the same prompt, in flight at the
 * same time), the run takes the one finished response whose generated content and tool calls
 * equal its own output; if that still leaves several that do not all carry the same trace — one
 * without a trace counts, it may be this run's own — the run gets no trace, never another run's.
 * A response is claimed at most once, and lives only as long as a run that may claim it.
 *
 * @example
 * ```ts
 * const captures = new TraceCaptures();
 * captures.openRun(runId, requestKeyOfMessages(messages));
 * // … handler.fetch: captures.begin(init.body) …
 * const claim = captures.claim(runId, llmResult);
 * captures.closeRun(runId);
 * ```
 */
export class TraceCaptures {
  private readonly runs = new Map<string, RunEntry>();
  private readonly byKey = new Map<string, Set<string>>();
  private readonly all = new Set<ResponseCapture>();

  /** Responses held now; 0 once every run that could claim them has ended. */
  get size(): number {
    return this.all.size;
  }

  /** Whether any run is open: a request with none open was sent outside the handler's runs. */
  get hasOpenRuns(): boolean {
    return this.runs.size > 0;
  }

  openRun(runId: string, key: string | undefined): void {
    this.closeRun(runId);
    this.runs.set(runId, { key, captures: new Set() });
    if (key === undefined) return;
    let runs = this.byKey.get(key);
    if (runs === undefined) this.byKey.set(key, (runs = new Set()));
    runs.add(runId);
  }

  /**
   * A request is about to be sent: returns the capture its response fills, or `undefined` when
   * no run is open to claim it.
   */
  begin(requestBody: unknown): ResponseCapture | undefined {
    if (this.runs.size === 0) return undefined;
    const key = requestKeyOfBody(requestBody);
    const matching = key === undefined ? undefined : this.byKey.get(key);
    // A request whose messages match no run's (a model that rewrites them) may be any open run's.
    const matched = matching !== undefined && matching.size > 0;
    const capture = new ResponseCapture(new Set(matched ? matching : this.runs.keys()), matched);
    if (this.all.size >= MAX_CAPTURES) this.drop(this.all.values().next().value as ResponseCapture);
    this.all.add(capture);
    for (const runId of capture.candidates) this.runs.get(runId)?.captures.add(capture);
    return capture;
  }

  /**
   * Finds the run's response, and only when it is certain which one that is. A response is
   * claimed at most once: the one taken can be no other run's. Call {@link closeRun} afterwards.
   */
  claim(runId: string, output: unknown): CaptureClaim {
    const run = this.runs.get(runId);
    if (run === undefined || run.captures.size === 0) return { kind: 'unobserved' };
    const live = [...run.captures].filter((c) => !c.failed);
    // Only this run could have sent these (a retry leaves a cut or failed one and a good one):
    // whichever carries the trace, it is this run's, so one without a trace competes with none.
    const exclusive = live.filter((c) => c.exclusive);
    if (exclusive.length > 0) {
      const traced = exclusive.filter((c) => c.rawTrace() !== undefined);
      return this.take(traced.length > 0 ? traced : exclusive);
    }
    const pool = this.sameContent(live, outputKey(output));
    if (pool.length === 0) return live.length > 0 ? { kind: 'ambiguous', responses: live.length } : { kind: 'found', trace: undefined };
    // Look-alikes of other runs compete whether or not they carry a trace: an untraced one (a
    // replica not behind the proxy) may be this run's own, and the traced one another run's.
    return this.take(pool);
  }

  /** The run has ended (or failed, or was dropped): it can claim nothing more. */
  closeRun(runId: string): void {
    const run = this.runs.get(runId);
    if (run === undefined) return;
    this.runs.delete(runId);
    if (run.key !== undefined) {
      const runs = this.byKey.get(run.key);
      runs?.delete(runId);
      if (runs?.size === 0) this.byKey.delete(run.key);
    }
    for (const capture of run.captures) {
      capture.candidates.delete(runId);
      if (capture.candidates.size === 0) this.drop(capture);
    }
  }

  /**
   * Takes the one response of `pool` when every response in it carries the same trace (or none):
   * then the figure is this run's whichever it sent. Otherwise nothing is taken.
   */
  private take(pool: ResponseCapture[]): CaptureClaim {
    const first = pool[0]!;
    const trace = first.rawTrace();
    if (pool.length > 1) {
      const json = stableJson(trace);
      if (pool.some((c) => stableJson(c.rawTrace()) !== json)) return { kind: 'ambiguous', responses: pool.length };
    }
    this.drop(first);
    return { kind: 'found', trace };
  }

  private sameContent(captures: ResponseCapture[], key: string | undefined): ResponseCapture[] {
    if (key === undefined) return [];
    // The run's own response was read to its end before LangChain ended the run.
    return captures.filter((c) => c.finished && c.contentKey() === key);
  }

  private drop(capture: ResponseCapture): void {
    this.all.delete(capture);
    for (const runId of capture.candidates) this.runs.get(runId)?.captures.delete(capture);
    capture.candidates.clear();
  }
}

/**
 * The messages of a LangChain run (or the prompt of an LLM run), as a key its request's body
 * also gives: the text of every message in order, empty ones left out.
 *
 * @example
 * ```ts
 * requestKeyOfMessages([new HumanMessage('Hi')]) === requestKeyOfBody('{"messages":[{"role":"user","content":"Hi"}]}'); // true
 * ```
 */
export function requestKeyOfMessages(messages: unknown): string | undefined {
  if (typeof messages === 'string') return keyOf([messages]);
  if (!Array.isArray(messages)) return undefined;
  return keyOf(messages.map((m: Loose) => (typeof m === 'string' ? m : textOf(m?.content))));
}

/**
 * The key of a request body: chat completions, Ollama `/api/chat` and Anthropic Messages
 * (`messages`, with Anthropic's `system` first), the Responses API (`input`) or completions and
 * Ollama `/api/generate` (`prompt`).
 *
 * @example
 * ```ts
 * requestKeyOfBody(init.body);
 * ```
 */
export function requestKeyOfBody(body: unknown): string | undefined {
  if (typeof body !== 'string') return undefined;
  let parsed: Loose;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object') return undefined;
  // Anthropic Messages (and Ollama /api/generate) send the system prompt apart from the messages;
  // LangChain's run has it as the first message.
  const system = typeof parsed.system === 'string' || Array.isArray(parsed.system) ? [textOf(parsed.system)] : [];
  if (Array.isArray(parsed.messages)) return keyOf([...system, ...parsed.messages.map((m: Loose) => textOf(m?.content))]);
  if (typeof parsed.input === 'string') return keyOf([parsed.input]);
  if (Array.isArray(parsed.input)) return keyOf(parsed.input.map((item: Loose) => textOf(item?.content ?? item?.output)));
  if (typeof parsed.prompt === 'string' || Array.isArray(parsed.prompt)) return requestKeyOfMessages(parsed.prompt);
  return undefined;
}

/** The event that ends a Responses stream with the whole response: done, or cut at max_output_tokens. */
function isResponsesEnd(type: unknown): boolean {
  return type === 'response.completed' || type === 'response.incomplete';
}

function parseObject(text: string): Loose {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined; // Not JSON: the client reports it; there is nothing to take.
  }
}

function keyOf(texts: string[]): string {
  return JSON.stringify(texts.filter((t) => t !== ''));
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) if (typeof part?.text === 'string') text += part.text;
  return text;
}

/**
 * What a LangChain run generated, as {@link ResponseCapture.contentKey} gives it for a response:
 * per choice, the text and the tool calls (name and arguments).
 */
function outputKey(output: Loose): string | undefined {
  const generations = output?.generations?.[0];
  if (!Array.isArray(generations) || generations.length === 0) return undefined;
  return generations
    .map((g: Loose) => {
      const message = g?.message;
      const tools = [
        ...(Array.isArray(message?.tool_calls) ? message.tool_calls : []).map((t: Loose) => toolKey(t?.name, JSON.stringify(t?.args ?? {}))),
        ...(Array.isArray(message?.invalid_tool_calls) ? message.invalid_tool_calls : []).map((t: Loose) => toolKey(t?.name, t?.args)),
      ];
      return choiceKey(typeof g?.text === 'string' ? g.text : textOf(message?.content), tools);
    })
    .join('\u0004');
}

function choiceKey(text: string, tools: string[]): string {
  return `${text}\u0001${tools.sort().join('\u0003')}`;
}

function toolKey(name: unknown, args: unknown): string {
  let canonical = typeof args === 'string' ? args : '';
  try {
    canonical = JSON.stringify(JSON.parse(canonical));
  } catch {
    // Arguments that are not JSON compare as sent.
  }
  return `${String(name ?? '')}\u0002${canonical}`;
}

function stableJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'undefined';
  } catch {
    return String(value);
  }
}
