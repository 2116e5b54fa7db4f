/**
 * A web stream read whole, but never past `limit` bytes: a body with no length (chunked, or a
 * stream without end) is otherwise buffered whatever its size. Runs wherever web streams do
 * (Node, edge), so the proxy's request bodies and the live grid's answers share it.
 *
 * @example
 * ```ts
 * const bytes = await readBounded(response.body, 64 * 1024);
 * if (bytes === undefined) console.warn('answer too large');
 * ```
 */
export async function readBounded(body: ReadableStream<Uint8Array> | null, limit: number, see?: (chunk: Uint8Array) => void): Promise<Uint8Array | undefined> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      // The rest is not read: cancelling lets the sender's connection go.
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    see?.(value);
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const whole = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    whole.set(chunk, at);
    at += chunk.byteLength;
  }
  return whole;
}
