import { EventTracer } from './sse-trace';
import { objectAt, trimmedPath, usageFrom, type Wire } from './wire';

/**
 * Whether a path is an OpenAI-compatible completion route (`…/chat/completions`, `…/completions`).
 *
 * @example
 * ```ts
 * isCompletionPath('/v1/chat/completions/'); // true
 * ```
 */
export function isCompletionPath(path: string): boolean {
  const trimmed = trimmedPath(path);
  return trimmed.endsWith('/chat/completions') || trimmed.endsWith('/completions');
}

/**
 * OpenAI's chat completions and legacy completions (`/v1/chat/completions`, `/v1/completions`),
 * as vLLM, llama.cpp, Ollama, TGI and most servers speak them. The trace goes at the top level of
 * the JSON body, or on the streamed chunk with the `finish_reason` (or the usage-only chunk)
 * before `[DONE]`. Usage: `usage.prompt_tokens`, `usage.completion_tokens`.
 *
 * @example
 * ```ts
 * chatWire.matches('POST', '/v1/chat/completions'); // true
 * ```
 */
export const chatWire: Wire = {
  name: 'chat',
  matches: (method, path) => method === 'POST' && isCompletionPath(path),
  kind: () => 'chat',
  userField: 'user',
  // A stream reports usage only when asked (`stream_options.include_usage`): its tokens are then unknown, and say so.
  reportsUsage: () => true,
  usageMembers: ['usage'],
  usageOf: (members) => {
    const usage = objectAt(members, 'usage');
    return usageFrom(usage?.prompt_tokens, usage?.completion_tokens);
  },
  streamTracer: (framing, hooks, limits) =>
    framing === 'sse' ? new EventTracer({ tokens: hooks.tokens, usage: (u) => hooks.usage(usageFrom(u.prompt_tokens, u.completion_tokens)) }, limits?.maxFrameBytes) : undefined,
};
