/**
 * `npm run bench:pollers`: what reading the books costs the model's traffic. The built
 * `carbon-trace proxy` (with a ledger) is filled to full tables — 1,000 models, API keys and
 * users — and then serves JSON completions (4 clients back to back) while 8 clients poll its
 * books as fast as they are answered: the whole `/carbon/stats`, `/metrics`, or the dashboard's
 * own request (`/carbon/stats?top=10&recent=60`), against nobody polling. Rounds interleave the
 * four conditions in a new order each time; each ratio is taken within its round, then reported as
 * the median with the spread over rounds.
 *
 * Not a test: nothing fails on a number. `--quick` for a smoke run; `--rounds N`; `--cli PATH`
 * to measure another build (an older dist/cli.js). Results go to bench/RESULTS-pollers.md (not in
 * quick mode, nor with --cli).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startPrinting } from './children';
import { closedLoop, cycle, postRequest } from './load';

const root = resolve(import.meta.dirname, '..');
const quick = process.argv.includes('--quick');
const argument = (name: string) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const ROUNDS = Number(argument('--rounds') ?? (quick ? 1 : 5));
const SECONDS = quick ? 0.5 : 3;
const cli = resolve(argument('--cli') ?? join(root, 'dist', 'cli.js'));
const ROWS = quick ? 100 : 1_000;

const scratch = mkdtempSync(join(tmpdir(), 'carbon-trace-pollers-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

const get = (port: number, path: string) => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const spread = (xs: number[]) => (xs.length > 1 ? ` (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})` : '');
const shuffle = <T,>(xs: T[]) => xs.map((x) => [Math.random(), x] as const).sort((a, b) => a[0] - b[0]).map(([, x]) => x);

async function main(): Promise<void> {
  if (!existsSync(cli)) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  const { port: upstream } = await startPrinting(process.execPath, ['--import', 'tsx', 'bench/plain-upstream.ts'], /http:\/\/127\.0\.0\.1:(\d+)/);
  const { port } = await startPrinting(process.execPath, [cli, 'proxy', '--upstream', `http://127.0.0.1:${upstream}`, '--port', '0', '--meter', 'estimate', '--ledger', join(scratch, 'ledger.csv')], /listening on http:\/\/127\.0\.0\.1:(\d+)/);

  // Full tables: ROWS models, API keys and users.
  const filling = Array.from({ length: ROWS }, (_, i) => {
    const body = JSON.stringify({ model: `model-${i}`, user: `user-${i}`, messages: [{ role: 'user', content: 'hi' }] });
    return Buffer.from(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer key-${i}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });
  await cycle(port, filling, 8, ROWS);
  const stats = await (await fetch(`http://127.0.0.1:${port}/carbon/stats`)).text();
  const dashboard = await (await fetch(`http://127.0.0.1:${port}/carbon/stats?top=10&recent=60`)).text();
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sizes = `books: ${ROWS} models, keys and users; /carbon/stats ${(stats.length / 1024).toFixed(0)} KiB, the dashboard's ?top=10 ${(dashboard.length / 1024).toFixed(0)} KiB, /metrics ${(metrics.length / 1024).toFixed(0)} KiB`;
  console.log(sizes);

  const completion = postRequest(`127.0.0.1:${port}`, '/v1/chat/completions', '{"model":"bench-model","messages":[{"role":"user","content":"Say something."}]}');
  const conditions: Array<{ name: string; poll?: Buffer }> = [
    { name: 'nobody polling' },
    { name: '8 clients polling /carbon/stats' },
    { name: '8 clients polling /metrics' },
    { name: '8 clients polling the dashboard\'s ?top=10&recent=60' },
  ];
  conditions[1]!.poll = get(port, '/carbon/stats');
  conditions[2]!.poll = get(port, '/metrics');
  conditions[3]!.poll = get(port, '/carbon/stats?top=10&recent=60');
  const results = new Map(conditions.map((c) => [c.name, { p50: [] as number[], p99: [] as number[], rps: [] as number[], polls: [] as number[], errors: 0 }]));
  for (let round = 0; round < ROUNDS; round++) {
    const base: Record<string, { p50: number; p99: number; rps: number }> = {};
    for (const condition of shuffle(conditions)) {
      const [load, polls] = await Promise.all([
        closedLoop(port, completion, 4, SECONDS * 1000),
        condition.poll ? closedLoop(port, condition.poll, 8, SECONDS * 1000) : Promise.resolve(undefined),
      ]);
      base[condition.name] = load;
      const r = results.get(condition.name)!;
      r.errors += load.errors;
      if (polls) r.polls.push(polls.rps);
    }
    const none = base['nobody polling']!;
    for (const condition of conditions) {
      const r = results.get(condition.name)!;
      const x = base[condition.name]!;
      r.p50.push(x.p50 / none.p50);
      r.p99.push(x.p99 / none.p99);
      r.rps.push(x.rps / none.rps);
      if (condition.name === 'nobody polling') {
        r.p50[r.p50.length - 1] = x.p50;
        r.p99[r.p99.length - 1] = x.p99;
        r.rps[r.rps.length - 1] = x.rps;
      }
    }
  }

  const lines = [
    `| Condition | completions p50 | p99 | req/s | polls answered/s |`,
    `|---|---|---|---|---|`,
    ...conditions.map((c) => {
      const r = results.get(c.name)!;
      if (c.name === 'nobody polling') return `| ${c.name} | ${median(r.p50).toFixed(2)} ms${spread(r.p50)} | ${median(r.p99).toFixed(2)} ms${spread(r.p99)} | ${median(r.rps).toFixed(0)}${spread(r.rps)} | — |`;
      return `| ${c.name} | ${median(r.p50).toFixed(2)}×${spread(r.p50)} | ${median(r.p99).toFixed(2)}×${spread(r.p99)} | ${median(r.rps).toFixed(2)}×${spread(r.rps)} | ${median(r.polls).toFixed(0)}${spread(r.polls)} |`;
    }),
  ];
  const errors = [...results.values()].reduce((n, r) => n + r.errors, 0);
  console.log(`\n${lines.join('\n')}\n\ncompletion errors: ${errors}; ${ROUNDS} round(s) of ${SECONDS} s per condition; ratios are to nobody polling, within each round (median, spread)`);
  if (!quick && argument('--cli') === undefined) {
    writeFileSync(
      join(root, 'bench', 'RESULTS-pollers.md'),
      `# Reading the books while the model serves\n\n\`npm run bench:pollers\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${ROUNDS} rounds of ${SECONDS} s per condition, interleaved. JSON completions from 4 clients back to back through the built proxy (with a ledger), while 8 clients poll its books as fast as they are answered. ${sizes}.\n\nThe first row is absolute; the others are ratios to it, taken within each round (median, and the spread over rounds).\n\n${lines.join('\n')}\n\nCompletion errors: ${errors}.\n`,
    );
  }
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
