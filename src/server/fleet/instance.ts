import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

/**
 * The id of the proxy that keeps a ledger, kept beside it (`<ledger>.instance-id`): the same across
 * restarts, so the fleet's database knows how far this ledger has been sent. Call it with the
 * ledger's lock held. A file that is there but holds no id is refused (a new id would send the
 * whole ledger again, which the rows' keys would keep exact, but slowly).
 *
 * @throws when the file is there and unusable.
 *
 * @example
 * ```ts
 * const id = instanceIdBeside(ledger.realPath); // '6b1c0e2a-…'
 * ```
 */
export function instanceIdBeside(ledgerRealPath: string): string {
  const path = `${ledgerRealPath}.instance-id`;
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(text)) return text.toLowerCase();
    throw new Error(`${path} holds no instance id: remove it and a new one is made`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const id = randomUUID();
  // Exclusive create: only one proxy holds the ledger's lock, but a file left there is never replaced.
  writeFileSync(path, `${id}\n`, { flag: 'wx', mode: 0o644 });
  return id;
}
