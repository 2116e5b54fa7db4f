/**
 * `npm run bench:proxy`: `carbon-trace proxy` side by side with nginx, in one run on one machine.
 *
 * Four ways to reach one plain `node:http` model-server stand-in (bench/plain-upstream.ts): the
 * upstream directly; nginx as a streaming reverse proxy (Debian's package: `proxy_buffering off`,
 * HTTP/1.1, upstream keepalive, one worker — the proxy is one Node thread); a bare pass-through
 * on the proxy's own stack (bench/bare-proxy.ts: what the hop costs on Node); and the built
 * `carbon-trace proxy`. Each runs in a process of its own; the load comes from this one
 * (bench/load.ts). Rounds interleave the four, and every ratio is taken within a round, then
 * reported as the median with the spread over rounds.
 *
 * Not a test: nothing fails on a number. `--quick` for a smoke run; `--rounds N`; `--baseline
 * <dist/cli.js of another build>` adds that build to the rounds and a column of ratios to it; `--profile`
 * writes a CPU profile of the proxy under JSON load to .tmp/. Results go to bench/RESULTS-proxy.md
 * (not in quick mode).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { spawnChild, startPrinting, stopAll } from './children';
import { closedLoop, cycle, firstBytes, postRequest, wholeStreams } from './load';

const root = resolve(import.meta.dirname, '..');
const quick = process.argv.includes('--quick');
const profile = process.argv.includes('--profile');
const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : quick ? 1 : 5;
const SECONDS = quick ? 0.5 : 3;

type Target = { name: string; port: number; child?: ChildProcess; pids: number[] };


async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  return port;
}

function findNginx(): string | undefined {
  for (const path of [process.env.NGINX_PATH, '/usr/sbin/nginx', '/usr/bin/nginx']) if (path && existsSync(path)) return path;
  return undefined;
}

async function startNginx(upstreamPort: number): Promise<Target | undefined> {
  const nginx = findNginx();
  if (!nginx) {
    console.log('nginx: not found, its rows are skipped (sudo apt-get install -y nginx)');
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-nginx-'));
  const port = await freePort();
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  client_max_body_size 32m;
  keepalive_requests 1000000;
  upstream model { server 127.0.0.1:${upstreamPort}; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  );
  const child = spawnChild(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port);
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return { name: 'nginx', port, child, pids: pidsOfGroup(child.pid!) };
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((res) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        res(true);
      });
      socket.on('error', () => res(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

/** Every pid in a process group (nginx: master and worker). */
function pidsOfGroup(pgid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '-g', String(pgid)], { encoding: 'utf8' }).split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
  } catch {
    return [pgid];
  }
}

/** CPU seconds (user + system) of these processes so far. */
function cpuSeconds(pids: number[]): number {
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / ticks;
    } catch {
      // gone
    }
  }
  return total;
}

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const spread = (xs: number[]) => (xs.length > 1 ? ` (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})` : '');

async function main(): Promise<void> {
  if (!existsSync(join(root, 'dist', 'cli.js'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  const upstream = await startPrinting(process.execPath, ['--import', 'tsx', 'bench/plain-upstream.ts'], /http:\/\/127\.0\.0\.1:(\d+)/);
  const targets: Target[] = [{ name: 'upstream', port: upstream.port, child: upstream.child, pids: [upstream.child.pid!] }];
  const nginx = await startNginx(upstream.port);
  if (nginx) targets.push(nginx);
  const bare = await startPrinting(process.execPath, ['--import', 'tsx', 'bench/bare-proxy.ts', `http://127.0.0.1:${upstream.port}`], /http:\/\/127\.0\.0\.1:(\d+)/);
  targets.push({ name: 'bare node', port: bare.port, child: bare.child, pids: [bare.child.pid!] });
  const profileDir = join(root, '.tmp', 'proxy-profile');
  if (profile) mkdirSync(profileDir, { recursive: true });
  const ours = await startPrinting(
    process.execPath,
    [...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), 'dist/cli.js', 'proxy', '--upstream', `http://127.0.0.1:${upstream.port}`, '--port', '0'],
    /listening on http:\/\/127\.0\.0\.1:(\d+)/,
  );
  targets.push({ name: 'carbon-trace', port: ours.port, child: ours.child, pids: [ours.child.pid!] });
  // `--baseline <cli.js>`: another build of carbon-trace (an earlier commit's dist/cli.js) in the
  // same rounds, to see what a change costs, as a ratio measured side by side.
  const baselineArg = process.argv.indexOf('--baseline');
  const baselineCli = baselineArg > 0 ? resolve(process.argv[baselineArg + 1]!) : undefined;
  if (baselineCli !== undefined) {
    const baseline = await startPrinting(process.execPath, [baselineCli, 'proxy', '--upstream', `http://127.0.0.1:${upstream.port}`, '--port', '0'], /listening on http:\/\/127\.0\.0\.1:(\d+)/);
    targets.push({ name: 'baseline', port: baseline.port, child: baseline.child, pids: [baseline.child.pid!] });
  }

  const json = (port: number) => postRequest(`127.0.0.1:${port}`, '/v1/chat/completions', '{"model":"bench-model","messages":[{"role":"user","content":"Say something."}]}');
  const sse = (port: number, chunks: number) => postRequest(`127.0.0.1:${port}`, `/v1/chat/completions?chunks=${chunks}`, '{"model":"bench-model","stream":true,"messages":[{"role":"user","content":"Say something."}]}');

  // Correctness first: exactly one trace through carbon-trace, none elsewhere.
  const check = await closedLoop(ours.port, json(ours.port), 1, 200);
  const checkSse = await firstBytes(ours.port, sse(ours.port, 50), 4);
  console.log(`carbon-trace: traces per JSON response ${[...check.traceCounts].join(',')}, per stream ${[...checkSse.traceCounts].join(',')}; errors ${check.errors}`);

  type Metric = { name: string; unit: string; better: 'higher' | 'lower'; values: Map<string, number[]> };
  const metrics: Metric[] = [];
  const metric = (name: string, unit: string, better: 'higher' | 'lower') => {
    const m: Metric = { name, unit, better, values: new Map(targets.map((t) => [t.name, []])) };
    metrics.push(m);
    return m;
  };
  const rps = [1, 16, 64].map((c) => ({ c, rps: metric(`JSON, ${c} concurrent, req/s`, 'req/s', 'higher'), p50: metric(`JSON, ${c} concurrent, p50 latency`, 'ms', 'lower'), p99: metric(`JSON, ${c} concurrent, p99 latency`, 'ms', 'lower') }));
  const ttfb1 = metric('SSE 50 chunks, 1 client, time to first byte (median of 20)', 'ms', 'lower');
  const ttfb64 = metric('SSE 50 chunks, 64 streams starting together, time to first byte (median)', 'ms', 'lower');
  const chunksPerSecond = metric('SSE 2,000 chunks, 1 client, chunks/s', 'chunks/s', 'higher');
  const errors = new Map<string, number>(targets.map((t) => [t.name, 0]));
  const traceCounts = new Map<string, Set<number>>(targets.map((t) => [t.name, new Set()]));

  // Warm-up, not measured: the JIT, the upstream connections of each proxy.
  for (const t of targets) {
    await closedLoop(t.port, json(t.port), 16, quick ? 300 : 2000);
    await firstBytes(t.port, sse(t.port, 50), 64);
  }

  for (let round = 0; round < ROUNDS; round++) {
    // Each round takes the targets in another order, so none always runs first or warm.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
    for (const t of order) {
      for (const { c, rps: r, p50, p99 } of rps) {
        const result = await closedLoop(t.port, json(t.port), c, SECONDS * 1000);
        r.values.get(t.name)!.push(result.rps);
        p50.values.get(t.name)!.push(result.p50);
        p99.values.get(t.name)!.push(result.p99);
        errors.set(t.name, errors.get(t.name)! + result.errors);
        for (const n of result.traceCounts) traceCounts.get(t.name)!.add(n);
      }
      const one: number[] = [];
      for (let i = 0; i < 20; i++) one.push((await firstBytes(t.port, sse(t.port, 50), 1)).ttfb[0]!);
      ttfb1.values.get(t.name)!.push(median(one));
      const many = await firstBytes(t.port, sse(t.port, 50), 64);
      ttfb64.values.get(t.name)!.push(median(many.ttfb));
      for (const n of many.traceCounts) traceCounts.get(t.name)!.add(n);
      const whole = await wholeStreams(t.port, sse(t.port, 2000), quick ? 2 : 5);
      chunksPerSecond.values.get(t.name)!.push(2000 / (median(whole) / 1000));
    }
    console.log(`round ${round + 1}/${ROUNDS} done`);
  }

  // Idle CPU: the proxies doing nothing but their own timers (the meter samples every 100 ms).
  const idleSeconds = quick ? 1 : 10;
  const before = new Map(targets.map((t) => [t.name, cpuSeconds(t.pids)]));
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const idleCpu = new Map(targets.map((t) => [t.name, (100 * (cpuSeconds(t.pids) - before.get(t.name)!)) / idleSeconds]));

  // Memory: RSS of the proxy after 50,000 requests across 1,000 model names (first 5,000 warm up).
  let memory = '';
  if (!quick) {
    const models = Array.from({ length: 1000 }, (_, i) => postRequest(`127.0.0.1:${ours.port}`, '/v1/chat/completions', `{"model":"model-${i}","messages":[{"role":"user","content":"x"}]}`));
    const sendMany = (n: number) => cycle(ours.port, models, 16, n);
    await sendMany(5_000);
    const warm = rssMb(ours.child.pid!);
    await sendMany(45_000);
    memory = `RSS of carbon-trace proxy: ${warm.toFixed(1)} MB after 5,000 requests, ${rssMb(ours.child.pid!).toFixed(1)} MB after 50,000 across 1,000 model names`;
  }

  const lines: string[] = [];
  const has = (name: string) => targets.some((t) => t.name === name);
  const withBaseline = has('baseline');
  lines.push(
    `| scenario | ${targets.map((t) => t.name).join(' | ')} | carbon-trace ÷ ${has('nginx') ? 'nginx' : 'bare node'} |${withBaseline ? ' carbon-trace ÷ baseline |' : ''}`,
    `|---|${targets.map(() => '---').join('|')}|---|${withBaseline ? '---|' : ''}`,
  );
  const reference = has('nginx') ? 'nginx' : 'bare node';
  for (const m of metrics) {
    const ratios = m.values.get('carbon-trace')!.map((v, i) => v / m.values.get(reference)![i]!);
    const cells = targets.map((t) => {
      const v = median(m.values.get(t.name)!);
      return m.unit === 'ms' ? v.toFixed(2) : v >= 1000 ? `${(v / 1000).toFixed(2)}k` : v.toFixed(0);
    });
    const diff = m.unit === 'ms' ? `, ${(median(m.values.get('carbon-trace')!) - median(m.values.get(reference)!)) >= 0 ? '+' : ''}${(median(m.values.get('carbon-trace')!) - median(m.values.get(reference)!)).toFixed(2)} ms` : '';
    const versus = withBaseline ? m.values.get('carbon-trace')!.map((v, i) => v / m.values.get('baseline')![i]!) : [];
    lines.push(`| ${m.name} | ${cells.join(' | ')} | **${median(ratios).toFixed(2)}×**${spread(ratios)}${diff} |${withBaseline ? ` **${median(versus).toFixed(2)}×**${spread(versus)} |` : ''}`);
  }
  lines.push(`| idle CPU, % of one core | ${targets.map((t) => idleCpu.get(t.name)!.toFixed(2)).join(' | ')} | |${withBaseline ? ' |' : ''}`);
  const summary = [
    `Rounds: ${ROUNDS} (interleaved), ${SECONDS} s per JSON row; ratios taken per round, median (min–max over rounds).`,
    `Errors: ${targets.map((t) => `${t.name} ${errors.get(t.name)}`).join(', ')}. Traces per response: ${targets.map((t) => `${t.name} {${[...traceCounts.get(t.name)!].join(',')}}`).join(', ')}.`,
    ...(memory ? [memory] : []),
  ];
  const table = lines.join('\n');
  console.log(`\n${table}\n\n${summary.join('\n')}`);
  // A comparison with a baseline build is a question about one change, not the proxy's figures.
  if (!quick && !withBaseline) {
    const machine = `${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores, Node ${process.version}${nginx ? `, ${execFileSync(findNginx()!, ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() || 'nginx'}` : ''}`;
    writeFileSync(
      join(root, 'bench', 'RESULTS-proxy.md'),
      `# carbon-trace proxy vs nginx\n\nWritten by \`npm run bench:proxy\` on ${new Date().toISOString().slice(0, 10)} (${machine}). A shared 2-core VM: read the spread.\n\n${table}\n\n${summary.join('\n\n')}\n`,
    );
  }
  stopAll();
}

await main();
process.exit(0);
