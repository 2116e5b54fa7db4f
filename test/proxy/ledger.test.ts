/**
 * The proxy as the point of record: a ledger that survives `kill -9` (the packed CLI, killed for
 * real), books per API key and end user in which no key can be found, and rows a spreadsheet can
 * read safely.
 */
import { createHash, createHmac } from 'node:crypto';
import { once } from 'node:events';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCarbonProxy, createEnergyMeter, type EnergySource } from '../../src/server/index';
import { LEDGER_COLUMNS } from '../../src/server/books/ledger';
import { parseCsvLine, splitRecords } from '../../src/server/books/ledger-read';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { packedProject, startPackedProxy } from './packed-cli';

let upstream: FixtureServer;
let origin: string;
const dirs: string[] = [];
beforeAll(async () => {
  upstream = await startFixtureServer(() => ({ content: 'booked answer', latencyMs: 5 }));
  upstream.reply = () => ({ content: 'booked answer', latencyMs: 5 });
  origin = new URL(upstream.baseURL).origin;
});
afterAll(async () => {
  await upstream?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-ledger-'));
  dirs.push(dir);
  return dir;
};

const chat = (url: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }) }).then((r) => r.text());
const stats = async (url: string) => (await fetch(`${url}/carbon/stats`)).json();

/** The ledger's rows as objects, by its header, read as CSV is (a quoted name may hold commas, quotes and newlines). */
function rows(path: string): Array<Record<string, string>> {
  const records: string[] = [];
  splitRecords(readFileSync(path), 0, (text) => records.push(text));
  const [header, ...lines] = records;
  const columns = parseCsvLine(header!)!;
  return lines.map((line) => {
    const fields = parseCsvLine(line)!;
    return Object.fromEntries(columns.map((c, i) => [c, fields[i] ?? '']));
  });
}

describe('the ledger survives kill -9 (the packed CLI)', () => {
  it('12 requests, kill -9, a torn last line: the restart warns once and its books are the same; 5 more add 5', async () => {
    const project = packedProject('proxy-cli');
    const ledger = join(tempDir(), 'ledger.csv');
    const args = ['--upstream', origin, '--port', '0', '--grid-intensity', '56', '--ledger', ledger];
    const first = await startPackedProxy(project, args);
    await Promise.all(Array.from({ length: 12 }, (_, i) => chat(first.url, { stream: i % 2 === 0, model: i % 3 ? 'llama' : 'mistral' })));
    for (let i = 0; i < 100 && (await stats(first.url)).requests < 12; i++) await new Promise((r) => setTimeout(r, 20));
    const before = await stats(first.url);
    expect(before.requests).toBe(12);
    // Every request whose response the client has is in the file already.
    expect(rows(ledger)).toHaveLength(12);
    process.kill(-first.child.pid!, 'SIGKILL');
    await once(first.child, 'exit');
    appendFileSync(ledger, '2026-12-04T18:00:00.000Z,carbon-trace proxy,run,,0.4,0.0000');

    const second = await startPackedProxy(project, args);
    try {
      const warnings = second.stderr().split('\n').filter((l) => l.includes('torn'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^carbon-trace: ledger .*ledger\.csv: dropped a torn last line \(\d+ bytes/);
      const after = await stats(second.url);
      expect(after.requests).toBe(12);
      expect(after.attributedJoules).toBeCloseTo(before.attributedJoules, 9);
      expect(after.byModel.llama.requests).toBe(before.byModel.llama.requests);
      expect(Date.parse(after.since)).toBeLessThanOrEqual(Date.parse(before.recent.at(-1).at)); // the oldest (newest first)
      await Promise.all(Array.from({ length: 5 }, () => chat(second.url)));
      for (let i = 0; i < 100 && (await stats(second.url)).requests < 17; i++) await new Promise((r) => setTimeout(r, 20));
      const more = await stats(second.url);
      expect(more.requests).toBe(17);
      const kept = rows(ledger);
      expect(kept).toHaveLength(17);
      // The ledger's energy column adds up to the books (kWh → J).
      const ledgerJoules = kept.reduce((s, r) => s + Number(r.energy_consumed || 0) * 3.6e6, 0);
      expect(Math.abs(ledgerJoules - more.attributedJoules)).toBeLessThanOrEqual(0.01 * more.attributedJoules);
      const metrics = await (await fetch(`${second.url}/metrics`)).text();
      expect(metrics).toMatch(/^carbon_trace_requests_total\{model="llama",measured="false"\} \d+$/m);
      const counted = [...metrics.matchAll(/^carbon_trace_requests_total\{[^}]*\} (\d+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
      expect(counted).toBe(17);
    } finally {
      await second.stop();
    }
  }, 60_000);
});

describe('shutting down', () => {
  it('SIGTERM lets a live stream finish, books it, and exits', async () => {
    const project = packedProject('proxy-cli');
    const ledger = join(tempDir(), 'ledger.csv');
    const proxy = await startPackedProxy(project, ['--upstream', origin, '--port', '0', '--ledger', ledger]);
    upstream.reply = () => ({ content: 'one two three four five six seven eight', delayMs: 40 });
    const response = await fetch(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","stream":true,"messages":[]}' });
    const reader = response.body!.getReader();
    await reader.read(); // the stream has begun
    const exited = once(proxy.child, 'exit');
    process.kill(proxy.child.pid!, 'SIGTERM');
    let text = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
    expect(text).toContain('data: [DONE]');
    expect(text).toContain('x_carbon_trace');
    const [code] = await exited;
    expect(code).toBe(0);
    expect(rows(ledger)).toHaveLength(1);
    expect(rows(ledger)[0]!.streamed).toBe('true');
  }, 30_000);
});

describe('books per API key and end user', () => {
  it('six requests, two keys, two users: 4 and 2, 3 and 3 — and the keys are found nowhere', async () => {
    const dir = tempDir();
    const ledger = join(dir, 'ledger.csv');
    let now = performance.now();
    const source: EnergySource = { name: '50 W', measured: true, read: () => ({ cpuJoules: (50 * now) / 1000 }) };
    const warnings: string[] = [];
    const meter = createEnergyMeter({ sources: [source], clock: () => (now = performance.now()), sampleIntervalMs: 10, onWarning: (w) => void warnings.push(w) });
    const proxy = createCarbonProxy({ upstream: origin, meter, ledger, keyIdSecret: 'fleet-secret', onWarning: (w) => void warnings.push(w) });
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    const url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    const alpha = 'sk-alpha-0123456789abcdef';
    const beta = 'sk-beta-fedcba9876543210';
    try {
      await chat(url, { user: 'ana' }, { authorization: `Bearer ${alpha}` });
      await chat(url, { user: 'ana', stream: true }, { authorization: `Bearer ${alpha}` });
      await chat(url, {}, { authorization: `Bearer ${alpha}`, 'x-carbon-trace-user': 'ana' });
      await chat(url, {}, { authorization: `Bearer ${alpha}`, 'x-carbon-trace-user': 'bo' });
      await chat(url, { user: 'bo' }, { authorization: `Bearer ${beta}` });
      await chat(url, { user: 'bo', stream: true }, { authorization: `Bearer ${beta}` });
      const s = await stats(url);
      // HMAC-SHA-256 with the fleet's secret: without it an id cannot be checked against guesses.
      const id = (key: string) => `key:${createHmac('sha256', 'fleet-secret').update(key).digest('hex').slice(0, 12)}`;
      expect(Object.keys(s.byApiKey).sort()).toEqual([id(alpha), id(beta)].sort());
      expect(s.byApiKey[id(alpha)].requests).toBe(4);
      expect(s.byApiKey[id(beta)].requests).toBe(2);
      expect(s.byUser.ana.requests).toBe(3);
      expect(s.byUser.bo.requests).toBe(3);
      for (const book of ['byModel', 'byApiKey', 'byUser']) {
        const sum = Object.values(s[book] as Record<string, { joules: number }>).reduce((x, r) => x + r.joules, 0);
        expect(sum).toBeCloseTo(s.attributedJoules, 9);
      }
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain(`carbon_trace_api_key_requests_total{api_key="${id(alpha)}"} 4`);
      expect(metrics).toContain('carbon_trace_user_requests_total{user="ana"} 3');
      // The upstream still gets the client's own Authorization.
      expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${beta}`);
      await proxy.close();
      const everything = [JSON.stringify(s), metrics, readFileSync(ledger, 'utf8'), readFileSync(`${ledger}.snapshot.json`, 'utf8'), warnings.join('\n')].join('\n');
      for (const key of [alpha, beta]) {
        expect(everything).not.toContain(key);
        expect(everything).not.toContain(key.slice(3, 15)); // nor a part of it
        // nor its plain hash, which a dictionary would find
        expect(everything).not.toContain(createHash('sha256').update(key).digest('hex').slice(0, 12));
      }
      const kept = rows(ledger);
      expect(kept.map((r) => r.api_key_id)).toEqual([id(alpha), id(alpha), id(alpha), id(alpha), id(beta), id(beta)]);
      expect(kept.map((r) => r.user)).toEqual(['ana', 'ana', 'ana', 'bo', 'bo', 'bo']);
    } finally {
      await proxy.close();
      await meter.close();
    }
  });

  it('the ledger has CodeCarbon\'s columns first, empty cells for what is unknown, and guards spreadsheets', async () => {
    const dir = tempDir();
    const ledger = join(dir, 'ledger.csv');
    const meter = createEnergyMeter({ sources: [], sampleIntervalMs: 0, onWarning: false });
    const proxy = createCarbonProxy({ upstream: origin, meter, ledger, onWarning: false });
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    const url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    await chat(url, { model: '=HYPERLINK("http://evil")', user: 'a,"b"\nc' });
    await proxy.close();
    await meter.close();
    const header = readFileSync(ledger, 'utf8').split('\n')[0]!.split(',');
    expect(header.slice(0, 14)).toEqual(['timestamp', 'project_name', 'run_id', 'experiment_id', 'duration', 'emissions', 'emissions_rate', 'cpu_power', 'gpu_power', 'ram_power', 'cpu_energy', 'gpu_energy', 'ram_energy', 'energy_consumed']);
    expect(header).toEqual([...LEDGER_COLUMNS]);
    const text = readFileSync(ledger, 'utf8');
    expect(text).toContain(`"'=HYPERLINK(""http://evil"")"`);
    const [row] = rows(ledger);
    // No energy source: no figure, so empty cells, never 0.
    expect(row!.energy_consumed).toBe('');
    expect(row!.emissions).toBe('');
    expect(row!.measured).toBe('');
    expect(row!.status).toBe('200');
    expect(row!.tracking_mode).toBe('machine');
    // The file keeps the names as sent (a CSV reader gets them back whole, newline and all).
    expect(row!.model).toBe('=HYPERLINK("http://evil")');
    expect(row!.user).toBe('a,"b"\nc');
    // A second start reads it back, formula guard undone; the views keep control characters out.
    const meter2 = createEnergyMeter({ sources: [], sampleIntervalMs: 0, onWarning: false });
    const again = createCarbonProxy({ upstream: origin, meter: meter2, ledger, onWarning: false });
    const s = await again.stats();
    expect(Object.keys(s.byModel)).toEqual(['=HYPERLINK("http://evil")']);
    expect(Object.keys(s.byUser)).toEqual(['a,"b"\uFFFDc']);
    expect(s.requestsWithoutFigure).toBe(1);
    await again.close();
    await meter2.close();
  });

  it('a ledger that cannot be opened: the CLI says so in one line', async () => {
    const project = packedProject('proxy-cli');
    const { runPacked } = await import('./packed-cli');
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), '');
    const { code, stderr } = await runPacked(project, ['proxy', '--upstream', origin, '--port', '0', '--ledger', join(dir, 'file', 'ledger.csv')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^carbon-trace: --ledger .*ledger\.csv: ENOTDIR/);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });
});
