import { FrameTracer, type FrameRules } from './frame-tracer';
import { onlyModelOf, stringMember } from './model-lists';
import { objectAt, trimmedPath, usageFrom, type Wire } from './wire';

/**
 * TGI's `/generate_stream`: no `[DONE]`; the last event is the one whose `generated_text` is set
 * (with `details` when the request asked for them). It gets the trace.
 *
 * @example
 * ```ts
 * new FrameTracer(tgiEvents, hooks);
 * ```
 */
export const tgiEvents: FrameRules = {
  framing: 'sse',
  tokens: /"token"\s*:\s*\{/g,
  mayMatter: /"generated_text"\s*:\s*"/,
  read(data, usage) {
    if (typeof data.generated_text !== 'string') return 'pass';
    const details = objectAt(data, 'details');
    usage(usageFrom(details?.input_length, details?.generated_tokens));
    return 'carry';
  },
};

/**
 * Hugging Face TGI's own API (`/generate`, `/generate_stream`). The trace goes at the top level of
 * `/generate`'s body, or on the stream's last event. Usage: `details.generated_tokens` (and the
 * stream's `details.input_length`), only when the request asked for `details`: a request without
 * them is booked without tokens, and not counted as one that should have them. Requests name no
 * model: it is read from the upstream's `/info`.
 *
 * @example
 * ```ts
 * tgiWire.matches('POST', '/generate_stream'); // true
 * ```
 */
export const tgiWire: Wire = {
  name: 'tgi',
  // Exactly TGI's paths: KoboldCpp's /api/v1/generate and other …/generate routes are not TGI's.
  matches: (method, path) => method === 'POST' && /^\/generate(?:_stream)?$/.test(trimmedPath(path)),
  kind: () => 'chat',
  reportsUsage: () => false,
  usageMembers: ['details'],
  usageOf: (members) => {
    const details = objectAt(members, 'details');
    return usageFrom(details?.input_length, details?.generated_tokens);
  },
  streamTracer: (framing, hooks, limits) => (framing === 'sse' ? new FrameTracer(tgiEvents, hooks, limits) : undefined),
  modelLists: [
    { path: '/info', pick: (body) => stringMember(body, 'model_id') },
    { path: '/v1/models', pick: onlyModelOf },
  ],
};
