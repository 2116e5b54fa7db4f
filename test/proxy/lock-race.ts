/**
 * Run as a child process, two at once (`node --import tsx test/proxy/lock-race.ts <dir> <rounds>
 * <t0> [roundMs]`): at the same instants, t0 + roundMs (default 60) × round, both open the books of one new ledger per
 * round (its lock, then its key-id secret), on a busy-wait so neither is late. Prints one JSON
 * line per round: whether it got the ledger, from when to when (ms), and the secret it used.
 */
import { join } from 'node:path';
import { createProxyBooks } from '../../src/server/books';

const [dir, rounds, t0] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])];
const ROUND_MS = Number(process.argv[5] ?? 60);

// Warm up (the first open loads the C library), so that the rounds start on time.
await createProxyBooks({ ledger: join(dir, `warm-${process.pid}.csv`), warn: () => {} }).close();

for (let round = 0; round < rounds; round++) {
  const start = t0 + round * ROUND_MS;
  while (Date.now() < start);
  const ledger = join(dir, `race-${round}.csv`);
  try {
    const books = createProxyBooks({ ledger, warn: () => {}, keyIdSecret: 'beside-ledger' });
    const from = Date.now();
    // Held past the other's attempt, then let go before the next round.
    while (Date.now() < start + ROUND_MS / 2);
    const to = Date.now();
    await books.close();
    console.log(JSON.stringify({ round, held: true, from, to, secret: books.keyIdSecret?.toString('hex') }));
  } catch (error) {
    console.log(JSON.stringify({ round, held: false, error: (error as Error).message }));
  }
}
