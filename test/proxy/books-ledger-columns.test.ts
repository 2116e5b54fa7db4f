/**
 * The ledger's `trace_delivered`, `kind` and `expects_usage` columns, and the books read back from them: a new
 * ledger has them at the end; a ledger an earlier version began keeps its own columns (a row of
 * more cells than its header would be misread by every CSV reader) and is replayed with both
 * unknown, never "no"; a snapshot of an earlier version is taken, what it lacks at 0; bad cells
 * are unknown; `__proto__` reaches no prototype.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createEnergyMeter } from '../../src/server/index';
import { LEDGER_COLUMNS, ledgerLine, type LedgerEntry } from '../../src/server/books/ledger';
import { createProxyBooks, type BookedRequest, type ProxyBooks } from '../../src/server/books';

const grid = { gCo2PerKwh: 100, source: 'given' };
/** The columns 0.1 wrote: the current ones but the two added since. */
const OLD_COLUMNS = LEDGER_COLUMNS.filter((c) => c !== 'trace_delivered' && c !== 'kind' && c !== 'expects_usage');

const dirs: string[] = [];
const open: ProxyBooks[] = [];
afterEach(async () => {
  for (const books of open.splice(0)) await books.close();
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const ledgerPath = () => {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-columns-'));
  dirs.push(dir);
  return join(dir, 'ledger.csv');
};

function openBooks(ledger: string, warnings: string[] = []): ProxyBooks {
  const books = createProxyBooks({ ledger, warn: (_key, message) => void warnings.push(message) });
  open.push(books);
  return books;
}
async function close(books: ProxyBooks): Promise<void> {
  open.splice(open.indexOf(books), 1);
  await books.close();
}

const request = (model: string, joules: number, more: Partial<BookedRequest> = {}): BookedRequest => ({
  model,
  status: 200,
  streamed: false,
  energy: { joules: { gpu: joules }, totalJoules: joules, durationSeconds: 0.5, measured: true, warnings: [] },
  grid,
  usage: { promptTokens: 10, completionTokens: 20 },
  trace: undefined,
  ...more,
});

/** A chat whose trace reached the client, an embedding whose did not, a rerank not known, a route no wire knows. */
const MIX: BookedRequest[] = [
  request('llama', 100, { kind: 'chat', wire: 'chat', traceDelivered: true, streamed: true }),
  request('bge', 10, { kind: 'embedding', wire: 'embeddings', traceDelivered: false, usage: { promptTokens: 300 } }),
  request('bge-rerank', 5, { kind: 'rerank', wire: 'rerank', usage: {} }),
  request('llama', 1, { traceDelivered: false, usage: {} }),
];

async function viewsOf(books: ProxyBooks) {
  const meter = createEnergyMeter({ sources: [], sampleIntervalMs: 0, onWarning: false });
  try {
    return books.views(books.combine(meter.stats(), grid));
  } finally {
    await meter.close();
  }
}

/** One CSV line's fields (RFC 4180 quotes). */
function fieldsOf(line: string): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') out.push(field), (field = '');
    else field += ch;
  }
  out.push(field);
  return out;
}

/** The ledger's rows as objects, by its own header. */
function rows(path: string): { header: string[]; rows: Array<Record<string, string>> } {
  const [head, ...lines] = readFileSync(path, 'utf8').trimEnd().split('\n');
  const header = head!.split(',');
  return {
    header,
    rows: lines.map((line) => {
      const fields = fieldsOf(line);
      expect(fields, line).toHaveLength(header.length);
      return Object.fromEntries(header.map((c, i) => [c, fields[i] ?? '']));
    }),
  };
}

// The ledger keeps kWh to 12 significant digits: joules read back are the same to a µJ.
const µJ = (joules: number) => Math.round(joules * 1e6) / 1e6;
const basis = (b: { requests: number; joules: number; tokens: number }) => ({ requests: b.requests, joules: µJ(b.joules), tokens: b.tokens });

/** What the books say about kinds and delivery, for comparing runs. */
const summary = (v: Awaited<ReturnType<typeof viewsOf>>) => ({
  requests: Object.values(v.byModel).reduce((s, r) => s + r.requests, 0),
  byKind: Object.fromEntries(
    Object.entries(v.byKind).map(([k, r]) => [k, { requests: r.requests, joules: µJ(r.joules), delivered: r.tracesDelivered, notDelivered: r.tracesNotDelivered, prompt: basis(r.withTokens.prompt), completion: basis(r.withTokens.completion) }]),
  ),
  recent: v.recent.map((r) => [r.model, r.kind, r.traceDelivered, r.promptTokens, r.completionTokens]),
});

describe('a new ledger', () => {
  it('ends with trace_delivered and kind; the books read back from its rows alone are the same', async () => {
    const path = ledgerPath();
    const first = openBooks(path);
    for (const r of MIX) first.book(r);
    const before = summary(await viewsOf(first));
    await close(first);

    const file = rows(path);
    expect(file.header).toEqual([...LEDGER_COLUMNS]);
    expect(file.header.slice(-3)).toEqual(['trace_delivered', 'kind', 'expects_usage']);
    expect(file.rows.map((r) => [r.trace_delivered, r.kind])).toEqual([
      ['true', 'chat'],
      ['false', 'embedding'],
      ['', 'rerank'], // not known: an empty cell, never "false"
      ['false', ''],
    ]);
    expect(before.byKind).toMatchObject({
      chat: { requests: 1, delivered: 1, notDelivered: 0 },
      embedding: { requests: 1, delivered: 0, notDelivered: 1 },
      rerank: { requests: 1, delivered: 0, notDelivered: 0 },
      '(unknown)': { requests: 1, delivered: 0, notDelivered: 1 },
    });

    // From the snapshots, and from the rows alone: the same books.
    const again = openBooks(path);
    expect(summary(await viewsOf(again))).toEqual(before);
    await close(again);
    rmSync(`${path}.snapshot.json`);
    rmSync(`${path}.meter.json`);
    const fromRows = openBooks(path);
    expect(summary(await viewsOf(fromRows))).toEqual(before);
  });
});

describe('a ledger an earlier version began', () => {
  /** A 0.1 ledger: its header and three rows, as 0.1 wrote them. */
  function oldLedger(): string {
    const path = ledgerPath();
    const entry = (model: string, joules: number): LedgerEntry => ({ at: new Date().toISOString(), ...request(model, joules) });
    writeFileSync(path, `${OLD_COLUMNS.join(',')}\n${[entry('llama', 100), entry('llama', 50), entry('mistral', 25)].map((e) => ledgerLine(e, 'run-0.1', 'carbon-trace proxy', OLD_COLUMNS)).join('')}`);
    return path;
  }

  it('is replayed with kind and delivery unknown, says once that it keeps its columns, and its new rows have as many cells as its header', async () => {
    const path = oldLedger();
    const warnings: string[] = [];
    const books = openBooks(path, warnings);
    const v = await viewsOf(books);
    expect(v.byModel.llama!.requests).toBe(2);
    // Of unknown kind, and neither delivered nor not: not known.
    expect(Object.keys(v.byKind)).toEqual(['(unknown)']);
    expect(v.byKind['(unknown)']).toMatchObject({ requests: 3, tracesDelivered: 0, tracesNotDelivered: 0 });
    expect(v.byKind['(unknown)']!.joules).toBeCloseTo(175, 6);
    expect(v.recent.map((r) => [r.kind, r.traceDelivered, r.wire])).toEqual([[null, null, null], [null, null, null], [null, null, null]]);
    // Tokens were in 0.1's columns: the per-token bases are rebuilt from them.
    expect(basis(v.byModel.llama!.withTokens.completion)).toEqual({ requests: 2, joules: 150, tokens: 40 });
    expect(warnings.filter((w) => w.includes('earlier version'))).toEqual([
      expect.stringMatching(/ledger\.csv: begun by an earlier version, its header has no trace_delivered, kind, expects_usage columns: rows are written in its own columns, without them \(a new ledger file has them\)$/),
    ]);

    books.book(request('llama', 10, { kind: 'chat', traceDelivered: true }));
    // Shown in this run's books…
    expect((await viewsOf(books)).byKind.chat).toMatchObject({ requests: 1, tracesDelivered: 1 });
    await close(books);
    const file = rows(path); // every row as many cells as the header (checked inside)
    expect(file.header).toEqual(OLD_COLUMNS);
    expect(file.rows).toHaveLength(4);
    expect(file.rows[3]).toMatchObject({ model: 'llama', prompt_tokens: '10', completion_tokens: '20', status: '200' });

    // …and from its rows alone, all four of unknown kind again: the file could not keep it.
    rmSync(`${path}.snapshot.json`);
    rmSync(`${path}.meter.json`);
    const again = openBooks(path, warnings);
    const after = await viewsOf(again);
    expect(after.byKind['(unknown)']!.requests).toBe(4);
    expect(after.byKind['(unknown)']!.joules).toBeCloseTo(185, 6);
    expect(warnings.filter((w) => w.includes('earlier version'))).toHaveLength(2); // once per start
  });

  it('with a header and no row: it takes this version\'s header, and no warning', async () => {
    const path = ledgerPath();
    writeFileSync(path, `${OLD_COLUMNS.join(',')}\n`);
    const warnings: string[] = [];
    const books = openBooks(path, warnings);
    books.book(MIX[0]!);
    await close(books);
    const file = rows(path);
    expect(file.header).toEqual([...LEDGER_COLUMNS]);
    expect(file.rows.map((r) => [r.trace_delivered, r.kind])).toEqual([['true', 'chat']]);
    expect(warnings).toEqual([]);
  });

  it("an earlier version's snapshot (no byKind, rows without per-token bases or trace counts) is taken, and the kinds still add up", async () => {
    const path = ledgerPath();
    const first = openBooks(path);
    for (const r of MIX) first.book(r);
    await close(first);
    // The snapshot as the version before wrote it: the same file, fields it did not have removed.
    const snapshot = JSON.parse(readFileSync(`${path}.snapshot.json`, 'utf8'));
    delete snapshot.byKind;
    for (const table of ['byModel', 'byApiKey', 'byUser', 'metricModels', 'metricKeys', 'metricUsers']) {
      for (const [, row] of snapshot[table]) {
        delete row.withTokens;
        delete row.tracesDelivered;
        delete row.tracesNotDelivered;
      }
    }
    for (const r of snapshot.recent) for (const field of ['kind', 'wire', 'traceDelivered', 'promptTokens']) delete r[field];
    writeFileSync(`${path}.snapshot.json`, JSON.stringify(snapshot));

    const warnings: string[] = [];
    const books = openBooks(path, warnings);
    const v = await viewsOf(books);
    expect(warnings).toEqual([]); // it matches its file: no rebuild
    expect(v.byKind).toEqual({ '(unknown)': expect.objectContaining({ requests: 4, joules: 116 }) });
    expect(v.byModel.llama!.withTokens.completion).toMatchObject({ requests: 0, joules: 0, tokens: 0 });
    expect(v.recent[0]).toMatchObject({ kind: null, wire: null, traceDelivered: null, promptTokens: null });
    books.book(request('llama', 7, { kind: 'chat', traceDelivered: true }));
    const after = await viewsOf(books);
    // The per-token basis counts what came since: still the energy and the tokens of the same requests.
    expect(after.byModel.llama!.withTokens.completion).toMatchObject({ requests: 1, joules: 7, tokens: 20 });
    expect(Object.values(after.byKind).reduce((s, r) => s + r.requests, 0)).toBe(5);
    expect(Object.values(after.byKind).reduce((s, r) => s + r.joules, 0)).toBe(123);
  });
});

describe('bad input', () => {
  it('cells that are no kind or no yes/no are unknown; __proto__ as a kind, model or user reaches no prototype', async () => {
    const path = ledgerPath();
    const first = openBooks(path);
    first.book(request('__proto__', 3, { user: '__proto__', kind: '__proto__' as never, traceDelivered: true }));
    await close(first);
    const blank = ledgerLine({ at: new Date().toISOString(), ...request('m', 1) }, 'run', 'carbon-trace proxy');
    expect(blank.endsWith(',,\n')).toBe(true);
    for (const [delivered, kind] of [['yes', 'CHAT'], ['1', 'constructor'], ['TRUE', '__proto__'], ['no', 'embedding ']]) {
      appendFileSync(path, `${blank.slice(0, -3)},${delivered},${kind}\n`);
    }
    rmSync(`${path}.snapshot.json`);
    rmSync(`${path}.meter.json`);
    const books = openBooks(path);
    const v = await viewsOf(books);
    expect(Object.keys(v.byKind)).toEqual(['(unknown)']);
    expect(v.byKind['(unknown)']).toMatchObject({ requests: 5, tracesDelivered: 1, tracesNotDelivered: 0 });
    expect(v.recent.slice(0, 4).map((r) => [r.kind, r.traceDelivered])).toEqual(Array(4).fill([null, null]));
    expect(Object.getOwnPropertyNames(v.byModel)).toContain('__proto__');
    expect(v.byModel['__proto__']!.requests).toBe(1);
    expect(v.byUser['__proto__']!.requests).toBe(1);
    expect(({} as Record<string, unknown>).requests).toBeUndefined();
    expect(Object.getPrototypeOf(v.byKind)).toBe(null);
  });
});

describe('expects_usage: whether a request should have said its tokens survives a crash', () => {
  it('rows replayed without a snapshot keep it, so a missing count still leaves the token total unknown', async () => {
    const path = ledgerPath();
    const first = openBooks(path);
    // A chat answered 200 that should have reported usage and did not; one that did; an embedding that is not expected to.
    first.book(request('llama', 10, { kind: 'chat', expectsUsage: true, usage: {} }));
    first.book(request('llama', 10, { kind: 'chat', expectsUsage: true }));
    first.book(request('bge', 1, { kind: 'embedding', expectsUsage: false, usage: {} }));
    const live = (await viewsOf(first)).tokens;
    expect(live).toMatchObject({ requestsWithUsage: 1, requestsExpectingUsage: 2 });
    // As after kill -9: no snapshot; the next proxy replays the rows.
    await close(first);
    const file = rows(path);
    expect(file.header.at(-1)).toBe('expects_usage');
    expect(file.rows.map((r) => r.expects_usage)).toEqual(['true', 'true', 'false']);
    rmSync(`${path}.snapshot.json`, { force: true });
    rmSync(`${path}.meter.json`, { force: true });
    const second = openBooks(`${path}`);
    const replayed = (await viewsOf(second)).tokens;
    expect(replayed).toMatchObject({ requestsWithUsage: 1, requestsExpectingUsage: 2 });
    // Model Garden's view of these books: the total is unknown (null), not the one count it has.
    const { modelGardenStats } = await import('../../src/server/books');
    const garden = (tokens: typeof replayed) =>
      modelGardenStats({ since: '2026-11-01T00:00:00.000Z', requests: 3, totalJoules: 21, attributedJoules: 21, idleJoules: 0, unattributedJoules: 0, emissionsGrams: { total: 0 }, tokens, modelNames: ['llama', 'bge'], byComponent: {} }).total_tokens;
    expect(garden(replayed)).toBeNull();
    // Had the column been lost (the bug this guards), the same rows would have read as complete.
    expect(garden({ ...replayed, requestsExpectingUsage: 0 })).toBe(30);
    await close(second);
  });

  it('a 0.1 row (no column) that succeeded counts as expecting usage: unknown, never a total that reads as complete', async () => {
    const path = ledgerPath();
    const old: LedgerEntry = { at: '2026-11-01T00:00:00.000Z', model: 'llama', status: 200, streamed: false, energy: { joules: { gpu: 5 }, totalJoules: 5, durationSeconds: 1, measured: true, warnings: [] }, grid, usage: {} };
    writeFileSync(path, `${OLD_COLUMNS.join(',')}\n${ledgerLine(old, 'run-0.1', 'carbon-trace proxy', OLD_COLUMNS)}${ledgerLine({ ...old, status: 500 }, 'run-0.1', 'carbon-trace proxy', OLD_COLUMNS)}`);
    const books = openBooks(path);
    expect((await viewsOf(books)).tokens).toMatchObject({ requestsWithUsage: 0, requestsExpectingUsage: 1 });
    await close(books);
  });
});
