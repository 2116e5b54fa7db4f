/**
 * What a power cut cannot take: a file the books put in place (a snapshot, the key-id secret, a
 * new ledger) is flushed to disk before it gets its name, and its directory after. A power cut
 * cannot be had in a test; the order of the calls can. `node:fs` and `node:fs/promises` are the
 * real ones here, each call also written down (its file named relative to the test's folder).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ledgerEntry } from '../fixtures/ledger-entry';

const calls: string[] = [];
let root = '';
// Directories whose fsync fails as on a filesystem that refuses it (EINVAL).
let refuseDirectorySync = false;

const named = (path: string) => (path.startsWith(root) ? relative(root, path) || '.' : undefined);
const fdPaths = new Map<number, string>();
const note = (what: string, ...paths: Array<string | undefined>) => {
  if (paths.every((p) => p !== undefined)) calls.push([what, ...paths].join(' '));
};
const refused = () => Object.assign(new Error('EINVAL: invalid argument, fsync'), { code: 'EINVAL' });

vi.mock('node:fs', async (original) => {
  const fs = await original<typeof import('node:fs')>();
  return {
    ...fs,
    openSync: (...args: Parameters<typeof fs.openSync>) => {
      const fd = fs.openSync(...args);
      fdPaths.set(fd, String(args[0]));
      return fd;
    },
    writeSync: (fd: number, ...rest: unknown[]) => {
      note('write', named(fdPaths.get(fd) ?? ''));
      return (fs.writeSync as (...a: unknown[]) => number)(fd, ...rest);
    },
    fsyncSync: (fd: number) => {
      const path = fdPaths.get(fd) ?? '';
      note('fsync', named(path));
      if (refuseDirectorySync && fs.statSync(path).isDirectory()) throw refused();
      return fs.fsyncSync(fd);
    },
    fsync: (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
      note('fsync', named(fdPaths.get(fd) ?? ''));
      return fs.fsync(fd, callback);
    },
    linkSync: (from: string, to: string) => {
      note('link', named(from), named(to));
      return fs.linkSync(from, to);
    },
  };
});

vi.mock('node:fs/promises', async (original) => {
  const fs = await original<typeof import('node:fs/promises')>();
  return {
    ...fs,
    open: async (path: string, flags?: string) => {
      const handle = await fs.open(path, flags);
      const [writeFile, sync] = [handle.writeFile.bind(handle), handle.sync.bind(handle)];
      handle.writeFile = (async (data: string) => {
        note('write', named(path));
        return writeFile(data);
      }) as typeof handle.writeFile;
      handle.sync = async () => {
        note('fsync', named(path));
        if (refuseDirectorySync && (await handle.stat()).isDirectory()) throw refused();
        return sync();
      };
      return handle;
    },
    rename: async (from: string, to: string) => {
      note('rename', named(from), named(to));
      return fs.rename(from, to);
    },
  };
});

const { keyIdSecretBeside, openLedger, writeSnapshot } = await import('../../src/server/books/ledger');
const { createSnapshotWriter } = await import('../../src/server/books/snapshots');

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'carbon-trace-durable-'));
  dirs.push(root);
  calls.length = 0;
  refuseDirectorySync = false;
});

const entry = ledgerEntry();

describe('a power cut leaves every file the books put in place whole', () => {
  it('a snapshot: written aside, flushed, renamed over the old one, then its directory flushed', async () => {
    const path = join(root, 'ledger.csv.meter.json');
    await writeSnapshot(path, '{"old":true}');
    calls.length = 0;
    await writeSnapshot(path, '{"version":2}');
    expect(calls).toEqual(['write ledger.csv.meter.json.tmp', 'fsync ledger.csv.meter.json.tmp', 'rename ledger.csv.meter.json.tmp ledger.csv.meter.json', 'fsync .']);
    expect(readFileSync(path, 'utf8')).toBe('{"version":2}');
    expect(readdirSync(root)).toEqual(['ledger.csv.meter.json']);
  });

  it('the snapshot writer flushes the ledger up to what a snapshot describes before that snapshot is put in place (a surviving snapshot never names rows the disk lost)', async () => {
    const ledger = openLedger({ path: join(root, 'ledger.csv') });
    ledger.append(entry);
    const writer = createSnapshotWriter({ ledger, tables: () => ({}) as never, totals: () => ({ rows: ledger.written.rows }) as never, warn: () => {} });
    calls.length = 0;
    await writer.writeTotals();
    expect(calls).toEqual(['fsync ledger.csv', 'write ledger.csv.meter.json.tmp', 'fsync ledger.csv.meter.json.tmp', 'rename ledger.csv.meter.json.tmp ledger.csv.meter.json', 'fsync .']);
    await writer.close();
    ledger.close();
    const meter = JSON.parse(readFileSync(join(root, 'ledger.csv.meter.json'), 'utf8'));
    expect(meter.ledgerBytes).toBe(readFileSync(join(root, 'ledger.csv')).length);
  });

  it('the key-id secret: written aside and flushed, linked into place, then its directory flushed (never an empty secret after a power cut)', () => {
    const secret = keyIdSecretBeside(join(root, 'ledger.csv'));
    const shown = calls.map((c) => c.replace(/\.[0-9a-f-]{36}\.tmp/g, '.UUID.tmp'));
    expect(shown).toEqual(['write ledger.csv.key-id-secret.UUID.tmp', 'fsync ledger.csv.key-id-secret.UUID.tmp', 'link ledger.csv.key-id-secret.UUID.tmp ledger.csv.key-id-secret', 'fsync .']);
    expect(readFileSync(join(root, 'ledger.csv.key-id-secret'), 'utf8')).toBe(`${secret.toString('hex')}\n`);
    expect(readdirSync(root)).toEqual(['ledger.csv.key-id-secret']);
  });

  it('a new ledger: its header written and flushed, then its directory flushed, once (reopening it flushes no directory)', () => {
    const path = join(root, 'ledger.csv');
    openLedger({ path }).close();
    expect(calls).toEqual(['write ledger.csv', 'fsync ledger.csv', 'fsync .', 'fsync ledger.csv']);
    calls.length = 0;
    openLedger({ path }).close();
    expect(calls).toEqual(['fsync ledger.csv']);
  });

  it('a filesystem that refuses to flush a directory (EINVAL) is not an error: the snapshot, the secret and the ledger are still made', async () => {
    refuseDirectorySync = true;
    await writeSnapshot(join(root, 'ledger.csv.snapshot.json'), '{}');
    expect(keyIdSecretBeside(join(root, 'ledger.csv'))).toHaveLength(32);
    openLedger({ path: join(root, 'ledger.csv') }).close();
    expect(calls.filter((c) => c === 'fsync .')).toHaveLength(3);
    expect(readdirSync(root).sort()).toEqual(['ledger.csv', 'ledger.csv.key-id-secret', 'ledger.csv.snapshot.json']);
  });
});
