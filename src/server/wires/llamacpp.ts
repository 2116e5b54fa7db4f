import { FrameTracer, type FrameRules } from './frame-tracer';
import { onlyModelOf } from './model-lists';
import { trimmedPath, usageFrom, type Wire } from './wire';

/**
 * llama.cpp's `/completion` stream: no `[DONE]`; the last event has `"stop": true` and the
 * counts. It gets the trace.
 *
 * @example
 * ```ts
 * new FrameTracer(llamaCppEvents, hooks);
 * ```
 */
export const llamaCppEvents: FrameRules = {
  framing: 'sse',
  tokens: /"content"\s*:\s*"(?!")/g,
  mayMatter: /"stop"\s*:\s*true/,
  read(data, usage) {
    if (data.stop !== true) return 'pass';
    usage(usageFrom(data.tokens_evaluated, data.tokens_predicted));
    return 'carry';
  },
};

/**
 * llama.cpp's own completion API: `/completion`, and its alias `/completions` when it is the
 * whole path (`/v1/completions` is OpenAI's, on the chat wire). The trace goes at the top level,
 * or on the stream's last event (`"stop": true`). Usage: `tokens_evaluated`, `tokens_predicted`.
 * Requests name no model: it is read from the upstream's `/v1/models`.
 *
 * @example
 * ```ts
 * llamaCppWire.matches('POST', '/completions'); // true
 * llamaCppWire.matches('POST', '/v1/completions'); // false
 * ```
 */
export const llamaCppWire: Wire = {
  name: 'llamacpp',
  matches: (method, path) => {
    const trimmed = trimmedPath(path);
    return method === 'POST' && (trimmed.endsWith('/completion') || trimmed === '/completions');
  },
  kind: () => 'chat',
  reportsUsage: () => true,
  usageMembers: ['tokens_evaluated', 'tokens_predicted'],
  usageOf: (members) => usageFrom(members.tokens_evaluated, members.tokens_predicted),
  streamTracer: (framing, hooks) => (framing === 'sse' ? new FrameTracer(llamaCppEvents, hooks) : undefined),
  modelLists: [{ path: '/v1/models', pick: onlyModelOf }],
};
