/**
 * The fixture server in a process of its own, for benchmarks where the upstream must not share the
 * measured process's event loop (as a model server never does): prints its base URL, serves
 * until stdin closes.
 *
 *   node --import tsx bench/upstream.ts <chunks>
 */
import { startFixtureServer } from '../test/fixtures/openai-compatible-server';

const chunks = Number(process.argv[2] ?? 2000);
const server = await startFixtureServer(() => ({ content: 'word '.repeat(chunks), chunks }));
console.log(server.baseURL);
process.stdin.resume();
process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
