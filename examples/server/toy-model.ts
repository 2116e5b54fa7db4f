/**
 * A toy OpenAI-compatible model server, so that carbon-trace can be seen at work without a GPU
 * box: chat completions as JSON or SSE, tool calls and JSON-schema output, answered by a small
 * deterministic text generator that does a fixed amount of real CPU work per token and streams
 * each token as it is made. Like vLLM, llama.cpp, Ollama or TGI, it sends no carbon trace: the
 * examples and `npm run demo` put `carbon-trace proxy` in front of it, and every number they
 * print comes from there.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type ToyModel = { origin: string; baseURL: string; close(): Promise<void> };

type Message = { role: string; content?: unknown };
type JsonSchema = { type?: string | string[]; properties?: Record<string, JsonSchema>; items?: JsonSchema; enum?: unknown[] };
type Body = {
  model?: string;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  messages?: Message[];
  tools?: Array<{ function?: { name?: string; parameters?: JsonSchema } }>;
  response_format?: { type?: string; json_schema?: { schema?: JsonSchema } };
};

const SENTENCES = [
  'This answer comes from a small deterministic stand-in model.',
  'Every token it writes costs a fixed amount of real CPU work.',
  'The proxy in front of it measures that work as CodeCarbon estimates without power counters.',
  'Point the demo at a real model server to see measured numbers.',
  'Energy is reported in kilowatt-hours and emissions in kilograms of CO2 equivalent.',
];

/**
 * Starts the toy model on 127.0.0.1 and a random port.
 *
 * @example
 * ```ts
 * const model = await startToyModel();
 * console.log(model.baseURL); // http://127.0.0.1:<port>/v1
 * await model.close();
 * ```
 */
export async function startToyModel(): Promise<ToyModel> {
  const sockets = new Set<Socket>();
  let counter = 0;
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: String(error), type: 'server_error' } }));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method === 'GET' && req.url === '/v1/models') {
      json(res, 200, { object: 'list', data: [{ id: 'toy-model', object: 'model', owned_by: 'carbon-trace' }] });
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      json(res, 404, { error: { message: `no route ${req.method} ${req.url}`, type: 'not_found' } });
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Body;
    const id = `chatcmpl-toy-${++counter}`;
    const model = body.model ?? 'toy-model';
    const created = Math.floor(Date.now() / 1000);
    const answer = generate(body);
    const usage = { prompt_tokens: answer.promptTokens, completion_tokens: answer.tokens.length, total_tokens: answer.promptTokens + answer.tokens.length };
    const finishReason = answer.toolCall ? 'tool_calls' : 'stop';

    if (!body.stream) {
      for (const _token of answer.tokens) work();
      const message = answer.toolCall
        ? { role: 'assistant', content: null, tool_calls: [{ id: `call_${id}`, type: 'function', function: answer.toolCall }] }
        : { role: 'assistant', content: answer.tokens.join('') };
      json(res, 200, { id, object: 'chat.completion', created, model, choices: [{ index: 0, message, finish_reason: finishReason }], usage });
      return;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const base = { id, object: 'chat.completion.chunk', created, model };
    const send = (chunk: unknown) => new Promise<void>((resolve) => res.write(`data: ${JSON.stringify(chunk)}\n\n`, () => resolve()));
    await send({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
    if (answer.toolCall) {
      for (const _token of answer.tokens) work();
      await send({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: `call_${id}`, type: 'function', function: answer.toolCall }] }, finish_reason: null }] });
    } else {
      // One token at a time, as it is made: the proxy shares energy by the tokens it sees.
      for (const token of answer.tokens) {
        if (res.destroyed) return;
        work();
        await send({ ...base, choices: [{ index: 0, delta: { content: token }, finish_reason: null }] });
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    await send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: finishReason }] });
    if (body.stream_options?.include_usage) await send({ ...base, choices: [], usage });
    res.end('data: [DONE]\n\n');
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    baseURL: `${origin}/v1`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** The "model": a deterministic answer, as tokens (words with their trailing space). */
function generate(body: Body): { tokens: string[]; promptTokens: number; toolCall?: { name: string; arguments: string } } {
  const messages = body.messages ?? [];
  const prompt = messages.map((m) => contentText(m.content)).join(' ');
  const promptTokens = Math.max(1, prompt.split(/\s+/).filter(Boolean).length);
  const tools = body.tools ?? [];
  if (tools.length > 0 && !messages.some((m) => m.role === 'tool')) {
    const fn = tools[0]!.function ?? {};
    const args = JSON.stringify(sampleFor(fn.parameters, prompt));
    return { tokens: words(args), promptTokens, toolCall: { name: fn.name ?? 'tool', arguments: args } };
  }
  const format = body.response_format;
  if (format?.type === 'json_schema' || format?.type === 'json_object') {
    return { tokens: words(JSON.stringify(sampleFor(format.json_schema?.schema ?? { type: 'object', properties: { answer: { type: 'string' } } }, prompt))), promptTokens };
  }
  const first = hash(prompt) % SENTENCES.length;
  return { tokens: words([0, 1].map((i) => SENTENCES[(first + i) % SENTENCES.length]).join(' ')), promptTokens };
}

/** A value that satisfies a JSON schema, with strings taken from the prompt. */
function sampleFor(schema: JsonSchema | undefined, prompt: string): unknown {
  const type = Array.isArray(schema?.type) ? schema.type[0] : schema?.type;
  if (schema?.enum?.length) return schema.enum[0];
  switch (type) {
    case 'object':
      return Object.fromEntries(Object.entries(schema?.properties ?? {}).map(([k, v]) => [k, sampleFor(v, prompt)]));
    case 'array':
      return [sampleFor(schema?.items, prompt)];
    case 'number':
    case 'integer':
      return 42;
    case 'boolean':
      return true;
    default:
      return prompt.match(/\b[A-Z][a-z]+\b/g)?.at(-1) ?? 'demo';
  }
}

function words(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [text];
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: { text?: string }) => p?.text ?? '').join(' ');
  return '';
}

/** Inference, simulated: a fixed amount of real CPU work per token. */
function work(): void {
  let x = 1;
  for (let i = 0; i < 400_000; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  if (x === 0) console.log(''); // keeps the loop from being optimised away
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}
