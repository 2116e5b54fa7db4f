import { FrameTracer, type FrameRules } from './frame-tracer';
import { objectAt, trimmedPath, usageFrom, type Wire } from './wire';

const TERMINAL = new Set(['response.completed', 'response.incomplete']);

/**
 * The Responses API stream: the trace goes into the `response` object of `response.completed`
 * (or `response.incomplete`), the event whose `response` the SDKs keep as the final response.
 * It is the wire's last event: the books close as it comes.
 *
 * @example
 * ```ts
 * new FrameTracer(responsesEvents, hooks);
 * ```
 */
export const responsesEvents: FrameRules = {
  framing: 'sse',
  tokens: /"type"\s*:\s*"response\.(?:output_text|refusal|reasoning_text|reasoning_summary_text|function_call_arguments|custom_tool_call_input)\.delta"/g,
  mayMatter: /"type"\s*:\s*"response\.(?:completed|incomplete)"/,
  read(data, usage) {
    if (!TERMINAL.has(data.type)) return 'pass';
    const u = objectAt(objectAt(data, 'response'), 'usage');
    usage(usageFrom(u?.input_tokens, u?.output_tokens));
    return 'carry-end';
  },
  into: 'response',
};

/**
 * OpenAI's Responses API (`POST /v1/responses`), which `@ai-sdk/openai`'s `openai('model')`,
 * `client.responses.create` and `ChatOpenAI({ useResponsesApi: true })` speak, and vLLM serves.
 * The trace goes at the top level of the response object; streamed, into the `response` of
 * `response.completed`. Usage: `usage.input_tokens`, `usage.output_tokens`.
 *
 * @example
 * ```ts
 * responsesWire.matches('POST', '/v1/responses'); // true
 * ```
 */
export const responsesWire: Wire = {
  name: 'responses',
  // Exactly the Responses API's path (with or without /v1, as llama.cpp also serves it): another
  // resource's …/responses is not it.
  matches: (method, path) => method === 'POST' && /^(?:\/v1)?\/responses$/.test(trimmedPath(path)),
  kind: () => 'chat',
  userField: 'user',
  reportsUsage: () => true,
  usageMembers: ['usage'],
  usageOf: (members) => {
    const usage = objectAt(members, 'usage');
    return usageFrom(usage?.input_tokens, usage?.output_tokens);
  },
  streamTracer: (framing, hooks, limits) => (framing === 'sse' ? new FrameTracer(responsesEvents, hooks, limits) : undefined),
};
