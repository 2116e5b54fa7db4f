/**
 * A plain `node:http` model-server stand-in for the proxy benchmark, in a process of its own:
 * `POST /v1/chat/completions` answers a fixed JSON completion, or with `"stream":true` an SSE
 * stream of `?chunks=N` content chunks (default 50), `?delayMs=D` apart (default 0), then the
 * finish chunk, a usage chunk and `[DONE]`. It does as little as a server can, so that what the
 * benchmark measures is the proxy in front of it. Prints its origin; serves until stdin closes.
 *
 *   node bench/plain-upstream.ts   (through --import tsx)
 */
import { createServer } from 'node:http';
import { serveUntilStdinEnds } from './serve';

const JSON_BODY = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created: 1_767_225_600,
    model: 'bench-model',
    choices: [{ index: 0, message: { role: 'assistant', content: 'The quick brown fox jumps over the lazy dog.' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 12, completion_tokens: 10, total_tokens: 22 },
  }),
);
const chunk = (delta: object, finish: string | null = null) =>
  Buffer.from(`data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_767_225_600, model: 'bench-model', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`);
const CONTENT = chunk({ content: 'word ' });
const FIRST = chunk({ role: 'assistant', content: '' });
const FINISH = chunk({}, 'stop');
const USAGE = Buffer.from(`data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_767_225_600, model: 'bench-model', choices: [], usage: { prompt_tokens: 12, completion_tokens: 50 } })}\n\n`);
const DONE = Buffer.from('data: [DONE]\n\n');

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (body.indexOf('"stream":true') < 0) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': JSON_BODY.length });
      res.end(JSON_BODY);
      return;
    }
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const n = Number(query.get('chunks') ?? 50);
    const delayMs = Number(query.get('delayMs') ?? 0);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(FIRST);
    let sent = 0;
    const next = () => {
      if (res.destroyed) return;
      if (sent >= n) {
        res.write(FINISH);
        res.write(USAGE);
        res.end(DONE);
        return;
      }
      sent++;
      const ok = res.write(CONTENT);
      if (delayMs > 0) setTimeout(next, delayMs);
      else if (ok) setImmediate(next);
      else res.once('drain', next);
    };
    next();
  });
});
await serveUntilStdinEnds(server);
