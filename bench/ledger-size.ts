/**
 * `node --import tsx bench/ledger-size.ts [rows]`: how a ledger of many rows reads back at start —
 * the whole file (no snapshot) and from a snapshot (the usual restart) — and the memory it takes.
 * Writes a ledger of `rows` rows (default 1,000,000) across 1,000 models, keys and users to a temp
 * directory, and removes it after. A script that reports, not a test.
 */
import { mkdtempSync, rmSync, statSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LEDGER_COLUMNS, ledgerLine } from '../src/server/books/ledger';
import { createProxyBooks } from '../src/server/books';

const rows = Number(process.argv[2] ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-ledger-size-'));
const path = join(dir, 'ledger.csv');
try {
  const fd = openSync(path, 'w');
  writeSync(fd, `${LEDGER_COLUMNS.join(',')}\n`);
  let batch = '';
  for (let i = 0; i < rows; i++) {
    const joules = 10 + (i % 97);
    batch += ledgerLine(
      {
        at: new Date(1_767_225_600_000 + i * 100).toISOString(),
        model: `model-${i % 1000}`,
        apiKeyId: `key:${(i % 1000).toString(16).padStart(12, '0')}`,
        user: `user-${i % 1000}`,
        status: 200,
        streamed: i % 2 === 0,
        energy: { joules: { cpu: joules * 0.2, gpu: joules * 0.7, ram: joules * 0.1 }, totalJoules: joules, durationSeconds: 1.5, measured: true, warnings: [] },
        grid: { gCo2PerKwh: 56, source: 'given with --grid-intensity' },
        usage: { promptTokens: 40, completionTokens: 200 },
      },
      'bench-run',
      'carbon-trace proxy',
    );
    if (batch.length > 1 << 20) {
      writeSync(fd, batch);
      batch = '';
    }
  }
  writeSync(fd, batch);
  closeSync(fd);
  const size = statSync(path).size;
  const measure = (label: string) => {
    const heapBefore = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const books = createProxyBooks({ ledger: path, warn: () => {} });
    const seconds = (performance.now() - t0) / 1000;
    const heap = (process.memoryUsage().heapUsed - heapBefore) / 1024 ** 2;
    books.close(); // writes the snapshot the next start reads
    console.log(`${label}: ${seconds.toFixed(2)} s, heap +${heap.toFixed(0)} MB`);
  };
  console.log(`${rows.toLocaleString('en')} rows, ${(size / 1024 ** 2).toFixed(0)} MB on disk (${(size / rows).toFixed(0)} bytes a row)`);
  measure('start reading every row (no snapshot)');
  measure('start from the snapshot (the usual restart)');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
