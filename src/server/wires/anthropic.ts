import { FrameTracer, type FrameRules } from './frame-tracer';
import { objectAt, trimmedPath, usageFrom, type Wire } from './wire';

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
      case 'message_start':
        // Its output_tokens is a placeholder (1): the count comes with message_delta.
        usage(usageFrom(objectAt(objectAt(data, 'message'), 'usage')?.input_tokens, undefined));
        return 'pass';
      case 'message_delta': {
        const u = objectAt(data, 'usage');
        usage(usageFrom(u?.input_tokens, u?.output_tokens));
        return 'carry';
      }
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
 * Usage: `usage.input_tokens`, `usage.output_tokens`.
 *
 * @example
 * ```ts
 * anthropicWire.matches('POST', '/v1/messages'); // true
 * ```
 */
export const anthropicWire: Wire = {
  name: 'anthropic',
  matches: (method, path) => method === 'POST' && trimmedPath(path).endsWith('/messages'),
  kind: () => 'chat',
  reportsUsage: () => true,
  usageMembers: ['usage'],
  usageOf: (members) => {
    const usage = objectAt(members, 'usage');
    return usageFrom(usage?.input_tokens, usage?.output_tokens);
  },
  streamTracer: (framing, hooks) => (framing === 'sse' ? new FrameTracer(anthropicEvents, hooks) : undefined),
};
