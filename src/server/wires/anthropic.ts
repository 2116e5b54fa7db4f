import { isCount } from '../../core/units';
import { FrameTracer, type FrameRules } from './frame-tracer';
import { objectAt, trimmedPath, usageFrom, type Wire, type WireUsage } from './wire';

/**
 * The tokens of a Messages `usage`. Its `input_tokens` leaves out the prompt read from or written
 * to the cache, which the server still processed or held: prompt tokens are the three together, as
 * OpenAI's `prompt_tokens` and the Responses API's `input_tokens` include cached tokens. A cache
 * count absent or `null` is none; one that is not a count makes the prompt's unknown.
 *
 * @example
 * ```ts
 * messagesUsage({ input_tokens: 3, cache_read_input_tokens: 4000, output_tokens: 5 }); // { promptTokens: 4003, completionTokens: 5 }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function messagesUsage(usage: Record<string, any> | undefined): WireUsage {
  let prompt: number | undefined = isCount(usage?.input_tokens) ? usage.input_tokens : undefined;
  for (const key of ['cache_read_input_tokens', 'cache_creation_input_tokens']) {
    const cached: unknown = usage?.[key];
    if (prompt === undefined || cached === undefined || cached === null) continue;
    prompt = isCount(cached) ? prompt + cached : undefined;
  }
  return usageFrom(prompt, usage?.output_tokens);
}

/**
 * The Messages stream: `message_start` reports the input tokens, `message_delta` the output
 * tokens and gets the trace; it is held until `message_stop` (a `ping` between them waits with
 * it), when the books close.
 *
 * @example
 * ```ts
 * new FrameTracer(anthropicEvents, hooks);
 * ```
 */
export const anthropicEvents: FrameRules = {
  framing: 'sse',
  tokens: /"type"\s*:\s*"content_block_delta"/g,
  mayMatter: /"type"\s*:\s*"(?:message_start|message_delta|message_stop|ping)"/,
  read(data, usage) {
    switch (data.type) {
      case 'message_start': {
        // Its output_tokens is a placeholder (1): the count comes with message_delta.
        const { promptTokens } = messagesUsage(objectAt(objectAt(data, 'message'), 'usage'));
        if (promptTokens !== undefined) usage({ promptTokens });
        return 'pass';
      }
      case 'message_delta':
        // Newer servers repeat the input counts here; older ones send output_tokens alone.
        usage(messagesUsage(objectAt(data, 'usage')));
        return 'carry';
      case 'ping':
        return 'keep';
      case 'message_stop':
        return 'end';
      default:
        return 'pass';
    }
  },
};

/**
 * Anthropic's Messages API (`POST /v1/messages`), which llama.cpp's server also speaks and
 * `@ai-sdk/anthropic`, `@anthropic-ai/sdk` and `ChatAnthropic` can point at. The trace goes at
 * the top level of the message; streamed, on the `message_delta` event with the final usage.
 * Usage: `usage.input_tokens` with the cached `cache_read_input_tokens` and
 * `cache_creation_input_tokens` ({@link messagesUsage}), `usage.output_tokens`.
 *
 * @example
 * ```ts
 * anthropicWire.matches('POST', '/v1/messages'); // true
 * ```
 */
export const anthropicWire: Wire = {
  name: 'anthropic',
  // Exactly the Messages path: OpenAI's Assistants (/v1/threads/{id}/messages) and other …/messages
  // routes are not Anthropic's.
  matches: (method, path) => method === 'POST' && trimmedPath(path) === '/v1/messages',
  kind: () => 'chat',
  reportsUsage: () => true,
  usageMembers: ['usage'],
  usageOf: (members) => messagesUsage(objectAt(members, 'usage')),
  streamTracer: (framing, hooks, limits) => (framing === 'sse' ? new FrameTracer(anthropicEvents, hooks, limits) : undefined),
};
