import { isCount } from '../../core/units';
import { FrameTracer, type FrameRules } from './frame-tracer';
import { onlyModelOf } from './model-lists';
import { trimmedPath, usageFrom, type Wire, type WireUsage } from './wire';

/**
 * llama.cpp's `/completion` stream: no `[DONE]`; the last event has `"stop": true` and the
 * counts. It gets the trace. A request with an array of prompts streams one answer per prompt,
 * each ending with its own `"stop": true` event and counts (told apart by `index`): the request's
 * usage is their sums, and the trace goes on the last of them.
 *
 * @example
 * ```ts
 * new FrameTracer(llamaCppEvents, hooks);
 * ```
 */
export const llamaCppEvents: FrameRules<Map<number, WireUsage>> = {
  framing: 'sse',
  tokens: /"content"\s*:\s*"(?!")/g,
  mayMatter: /"stop"\s*:\s*true/,
  memo: () => new Map(),
  read(data, usage, perPrompt) {
    if (data.stop !== true) return 'pass';
    perPrompt.set(isCount(data.index) ? data.index : 0, usageFrom(data.tokens_evaluated, data.tokens_predicted));
    usage(summed(perPrompt));
    return 'carry';
  },
};

/** The sums of every prompt's counts; a count one prompt lacks makes its sum unknown (reported as `undefined`, never as a partial sum). */
function summed(perPrompt: Map<number, WireUsage>): WireUsage {
  let promptTokens: number | undefined = 0;
  let completionTokens: number | undefined = 0;
  for (const u of perPrompt.values()) {
    promptTokens = promptTokens === undefined || u.promptTokens === undefined ? undefined : promptTokens + u.promptTokens;
    completionTokens = completionTokens === undefined || u.completionTokens === undefined ? undefined : completionTokens + u.completionTokens;
  }
  return { promptTokens, completionTokens };
}

/**
 * llama.cpp's own completion API: `/completion`, and its alias `/completions` when it is the
 * whole path (`/v1/completions` is OpenAI's, on the chat wire). The trace goes at the top level,
 * or on the stream's last event (`"stop": true`). Usage: `tokens_evaluated`, `tokens_predicted`
 * (streamed with several prompts: their sums). Requests name no model: it is read from the
 * upstream's `/v1/models`.
 *
 * @example
 * ```ts
 * llamaCppWire.matches('POST', '/completions'); // true
 * llamaCppWire.matches('POST', '/v1/completions'); // false
 * ```
 */
export const llamaCppWire: Wire = {
  name: 'llamacpp',
  // Exactly llama.cpp's paths: a base path before them is the upstream's.
  matches: (method, path) => method === 'POST' && /^\/completions?$/.test(trimmedPath(path)),
  kind: () => 'chat',
  reportsUsage: () => true,
  usageMembers: ['tokens_evaluated', 'tokens_predicted'],
  usageOf: (members) => usageFrom(members.tokens_evaluated, members.tokens_predicted),
  streamTracer: (framing, hooks, limits) => (framing === 'sse' ? new FrameTracer(llamaCppEvents, hooks, limits) : undefined),
  modelLists: [{ path: '/v1/models', pick: onlyModelOf }],
};
