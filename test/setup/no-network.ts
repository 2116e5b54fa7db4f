/**
 * Tests never reach the internet (there is none here). Anything that would download — such as
 * ChatOpenAI's tokenizer for `streaming: true` — fails at once instead of retrying with backoff.
 */
const realFetch = globalThis.fetch;

function isLoopback(input: RequestInfo | URL): boolean {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  return url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
}

globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
  if (!isLoopback(input)) throw new TypeError(`network disabled in tests: ${String(input instanceof Request ? input.url : input)}`);
  return realFetch(input, init);
}) as typeof fetch;
