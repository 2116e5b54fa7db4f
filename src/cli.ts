#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { ELECTRICITY_MAPS_API_URL, ELECTRICITY_MAPS_TOKEN_VARIABLE, gridIntensityOfZone, gridProviderFromOptions, type GridIntensityProvider } from './grid/index';
import { createEnergyMeter } from './server/meter/meter';
import { autoSources } from './server/sources/auto';
import { createCarbonProxy } from './server/proxy';
import { createKeyIds } from './server/proxy/access';
import { createFleetPool, redactDatabaseUrl, scrubbed } from './server/fleet/connect';
import { reportCsv, reportTable } from './server/fleet/format';
import { parseReportQuery, reportFromDatabase, reportFromLedger, type ReportQuery } from './server/fleet/report';
import { writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';

const HOST_HELP = 'address to listen on. 0.0.0.0 listens on every interface: anyone who can reach this machine can then call your model';

/** Whether an address to listen on reaches this machine only. */
const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

/** One line on stderr, and a non-zero exit: what a CLI owes a user who mistyped. */
function fail(message: string): never {
  process.stderr.write(`carbon-trace: ${message}\n`);
  process.exit(1);
}

/** `90` or `90d`: days. */
function retentionDays(value: string): number {
  const match = /^\s*(\d{1,6})\s*d?\s*$/i.exec(value);
  if (!match || Number(match[1]) < 1) throw new InvalidArgumentError('--retention takes a number of days, such as 90 or 90d');
  return Number(match[1]);
}

const integer = (name: string, min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`${name} takes a whole number from ${min} to ${max}`);
  return n;
};

// A server must not die because whoever read its output went away (a closed pipe, `| head`).
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

const program = new Command()
  .name('carbon-trace')
  .description('Per-request energy and CO2 of self-hosted models, measured on the hardware that serves them.')
  .showSuggestionAfterError(true)
  .configureOutput({ outputError: (message, write) => write(`carbon-trace: ${message.replace(/^error: /, '').trim()}\n`) });

program
  .command('proxy')
  .description(
    'Measure every model call to vLLM, llama.cpp, Ollama, TGI or TEI, put x_carbon_trace on each answer with a place for it (chat, Responses, Messages, embeddings, rerank…), and serve a live dashboard at /carbon.',
  )
  .requiredOption('--upstream <url>', 'the model server, e.g. http://127.0.0.1:8000')
  .addOption(new Option('--port <port>', 'port; 0 picks a free one').default(8787).argParser(integer('--port', 0, 65535)))
  .option('--host <address>', HOST_HELP, '127.0.0.1')
  .option('--allowed-host <name...>', 'Host names besides IPs and localhost (.example.org: a domain; *: any)')
  .addOption(new Option('--zone <zone>', "grid zone: ISO country code ('FR', 'FRA'), region ('WORLD'), or an Electricity Maps zone").conflicts('gridIntensity'))
  .addOption(
    new Option('--grid-intensity <g>', 'gCO2eq per kWh (default: world average, 475)').argParser((value) => {
      const g = Number(value);
      if (value.trim() === '' || !Number.isFinite(g) || g < 0) throw new InvalidArgumentError('--grid-intensity takes gCO2eq per kWh, a number ≥ 0');
      return g;
    }),
  )
  .addOption(new Option('--grid-source <source>', `live figure for --zone; token in ${ELECTRICITY_MAPS_TOKEN_VARIABLE}`).choices(['electricitymaps']).conflicts('gridIntensity'))
  .option('--grid-api-url <url>', 'Electricity Maps API', ELECTRICITY_MAPS_API_URL)
  .addOption(new Option('--grid-refresh <seconds>', 'seconds between live grid figures').default(300).argParser(integer('--grid-refresh', 1, 86_400)))
  .addOption(new Option('--meter <source>', 'energy source; auto picks what this machine can read').choices(['auto', 'rapl', 'nvml', 'amd-smi', 'powermetrics', 'estimate']).default('auto'))
  .addOption(new Option('--sample-ms <ms>', 'ms between readings while idle').default(100).argParser(integer('--sample-ms', 10, 60_000)))
  .addOption(new Option('--idle <mode>', 'idle apart, or shared in per-row views').choices(['exclude', 'share']).default('exclude'))
  .option('--ledger <file>', 'a CSV row per request; books continue from it')
  .option('--db <url>', "the fleet's Postgres, or env CARBON_TRACE_DB")
  .option('--instance <name>', 'name in period reports (default: host name)')
  .addOption(new Option('--retention <days>', 'with --db: days rows are kept (not rollups)').argParser(retentionDays))
  .addOption(new Option('--max-body-mb <mb>', 'largest body, MiB (else 413)').default(32).argParser(integer('--max-body-mb', 1, 4096)))
  .option('--powercap <dir>', 'RAPL powercap tree', '/sys/class/powercap')
  .option('--nvidia-smi <path>', 'if NVML has no energy', 'nvidia-smi')
  .option('--amd-smi <path>', 'amd-smi, AMD GPUs (ROCm 6+)', 'amd-smi')
  .option('--powermetrics <path>', 'Apple silicon, needs root', 'powermetrics')
  .addHelpText(
    'after',
    '\nRoutes: every path passes through to --upstream; each wire\'s answers gain x_carbon_trace (docs/proxy.md).\n' +
      '  GET /carbon                         live dashboard\n' +
      '  GET /carbon/stats                   totals as JSON; ?from=&to=&by= a period\n' +
      '  GET /api/v1/carbon/inference/stats  the same in Model Garden\'s shape\n' +
      '  GET /metrics                        Prometheus text\n' +
      'With CARBON_TRACE_ADMIN_TOKEN set, all but /carbon need it (Bearer).\n' +
      '\nExample: npx carbon-trace proxy --upstream http://127.0.0.1:8000 --zone FR',
  )
  .action(async (options: { upstream: string; port: number; host: string; allowedHost?: string[]; zone?: string; gridIntensity?: number; gridSource?: 'electricitymaps'; gridApiUrl: string; gridRefresh: number; meter: 'auto' | 'rapl' | 'nvml' | 'amd-smi' | 'powermetrics' | 'estimate'; sampleMs: number; idle: 'exclude' | 'share'; maxBodyMb: number; ledger?: string; db?: string; instance?: string; retention?: number; powercap: string; nvidiaSmi: string; amdSmi: string; powermetrics: string }) => {
    let upstream: URL;
    try {
      upstream = new URL(options.upstream);
      if (upstream.protocol !== 'http:' && upstream.protocol !== 'https:') throw new Error('not http');
    } catch {
      fail(`--upstream takes an http(s) URL such as http://127.0.0.1:8000 (got ${JSON.stringify(options.upstream.replace(/\/\/[^/@]*@/, '//…@'))})`);
    }
    if (upstream.username !== '' || upstream.password !== '') {
      fail('--upstream must not carry credentials (user:password@): the client\'s own Authorization header is what reaches the model server');
    }
    // Each distinct warning once (a proxy repeats the same one at every request otherwise).
    const said = new Set<string>();
    const say = (message: string) => {
      if (said.has(message)) return;
      if (said.size >= 1000) said.clear();
      said.add(message);
      process.stderr.write(`carbon-trace: ${message}\n`);
    };
    let gridIntensity: { gCo2PerKwh: number; source?: string } | GridIntensityProvider | undefined;
    let gridLine: string | undefined;
    if (options.gridSource !== undefined) {
      if (options.zone === undefined) fail(`--grid-source ${options.gridSource} needs --zone, an Electricity Maps zone such as FR or US-CAL-CISO`);
      try {
        // Never blocks the start: until its first answer it books at the zone's yearly average.
        gridIntensity = gridProviderFromOptions({
          source: options.gridSource,
          zone: options.zone,
          token: process.env[ELECTRICITY_MAPS_TOKEN_VARIABLE],
          apiUrl: options.gridApiUrl,
          refreshSeconds: options.gridRefresh,
          onWarning: say,
        });
      } catch (error) {
        fail((error as Error).message);
      }
      gridLine = `live from Electricity Maps, zone ${options.zone}, every ${options.gridRefresh} s (until the first figure: ${gridIntensity.current().gCo2PerKwh} gCO2eq/kWh, the yearly average)`;
    } else if (options.zone !== undefined) {
      const found = gridIntensityOfZone(options.zone);
      if (found === undefined) fail(`unknown --zone ${JSON.stringify(options.zone)}: use an ISO 3166-1 country code such as FR or FRA, or a region such as WORLD`);
      gridIntensity = { gCo2PerKwh: found.gCo2PerKwh, source: found.source ?? `zone ${options.zone}` };
    } else if (options.gridIntensity !== undefined) {
      gridIntensity = { gCo2PerKwh: options.gridIntensity, source: 'given with --grid-intensity' };
    }

    // A token from a secret file ends in a newline: trimmed. One that is set but empty would leave the books open unseen.
    const adminVariable = process.env.CARBON_TRACE_ADMIN_TOKEN;
    if (adminVariable !== undefined && adminVariable.trim() === '') fail('CARBON_TRACE_ADMIN_TOKEN is set but empty: give it a token (e.g. openssl rand -hex 32), or unset it to leave the books open');
    const adminToken = adminVariable?.trim();
    if (adminToken !== undefined && /\s/.test(adminToken)) fail('CARBON_TRACE_ADMIN_TOKEN holds whitespace, which an Authorization: Bearer header cannot carry');
    // The key-id secret too: a newline from a secret file would give every key another id than on the fleet's other proxies.
    const keyIdSecret = process.env.CARBON_TRACE_KEY_ID_SECRET?.trim();
    if (keyIdSecret === '') fail('CARBON_TRACE_KEY_ID_SECRET is set but empty: give it the fleet\'s secret, or unset it to keep one beside the ledger');
    // Names clients use besides the flag's: the one given to listen on, and this machine's own.
    const allowedHosts = [...(options.allowedHost ?? []), ...(isIP(options.host) === 0 ? [options.host] : []), hostname()];

    if (options.db !== undefined && options.db.trim() === '') fail('--db is empty: give postgres://user:password@host:5432/db (is CARBON_TRACE_DB set in this shell?)');
    const db = options.db ?? (process.env.CARBON_TRACE_DB?.trim() || undefined);
    const dbFrom = options.db !== undefined ? '--db' : 'CARBON_TRACE_DB (set in the environment)';
    if (db !== undefined && options.ledger === undefined) fail(`${dbFrom} needs --ledger FILE: rows go to the database from the ledger, and wait in it while the database is down`);
    if (options.retention !== undefined && db === undefined) fail('--retention applies to the database\'s rows: give --db too');
    if (db !== undefined && !/^postgres(ql)?:\/\//i.test(db)) fail(`--db takes a postgres:// URL, got ${redactDatabaseUrl(db)}`);

    let chosen: Awaited<ReturnType<typeof autoSources>>;
    try {
      chosen = await autoSources({ mode: options.meter, rapl: { root: options.powercap }, nvml: { nvidiaSmi: options.nvidiaSmi }, amdSmi: { executable: options.amdSmi }, powermetrics: { executable: options.powermetrics } });
    } catch (error) {
      fail(`--meter ${options.meter}: ${(error as Error).message}`);
    }
    const meter = createEnergyMeter({
      sources: chosen.sources,
      description: chosen.description,
      sampleIntervalMs: options.sampleMs,
      idle: options.idle,
      onWarning: say,
    });
    await meter.ready;

    const target = `${upstream.origin}${upstream.pathname.replace(/\/$/, '')}`;
    // Upstream news waits for the first lines, which say what the proxy is.
    let started = false;
    let held: string | undefined;
    let proxy: ReturnType<typeof createCarbonProxy>;
    try {
      proxy = createCarbonProxy({
        upstream: upstream.href,
        meter,
        ...(gridIntensity ? { gridIntensity } : {}),
        maxBodyBytes: options.maxBodyMb * 1024 * 1024,
        ...(options.ledger !== undefined ? { ledger: options.ledger } : {}),
        ...(db !== undefined ? { db } : {}),
        ...(options.instance !== undefined ? { instance: options.instance } : {}),
        ...(options.retention !== undefined ? { retentionDays: options.retention } : {}),
        ...(adminToken !== undefined ? { adminToken } : {}),
        ...(allowedHosts.length > 0 ? { allowedHosts } : {}),
        ...(keyIdSecret !== undefined ? { keyIdSecret } : {}),
        onWarning: say,
        // The model server may still be loading (vLLM takes minutes): start anyway, answer 502
        // until it answers, and say when that changes.
        onUpstreamState: (state) => {
          const line = state.reachable ? `upstream ${target} is reachable` : `upstream ${target} is not reachable${state.reason ? ` (${state.reason})` : ''}: answering 502 until it is`;
          if (started) console.log(line);
          else held = line;
        },
      });
    } catch (error) {
      // The ledger's errors begin with its path: said once.
      const message = (error as Error).message;
      const ledger = options.ledger;
      fail(ledger !== undefined && message.startsWith(`${ledger}: `) ? `--ledger ${ledger}: ${message.slice(ledger.length + 2)}` : message);
    }
    const server = proxy.server;
    server.on('error', (error: NodeJS.ErrnoException) => fail(`cannot listen on ${options.host}:${options.port}: ${error.code ?? error.message}`));
    server.listen(options.port, options.host, () => {
      started = true;
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : options.port;
      const host = options.host.includes(':') ? `[${options.host}]` : options.host;
      console.log(`carbon-trace proxy listening on http://${host}:${port} → ${target}`);
      console.log(`meter: ${meter.describe()}`);
      console.log(`grid: ${gridLine ?? (gridIntensity && 'gCo2PerKwh' in gridIntensity ? `${gridIntensity.gCo2PerKwh} gCO2eq/kWh (${gridIntensity.source})` : '475 gCO2eq/kWh (world average; set --zone or --grid-intensity)')}`);
      console.log(`dashboard: http://${host}:${port}/carbon · stats: /carbon/stats · Prometheus: /metrics`);
      if (db !== undefined) console.log(`fleet: rows go to ${redactDatabaseUrl(db)} as instance ${options.instance ?? hostname()}${options.retention !== undefined ? `, kept ${options.retention} days` : ''}`);
      if (options.host === '0.0.0.0' || options.host === '::') console.log('note: listening on every interface — anyone who can reach this machine can call the model through the proxy');
      if (!isLoopback(options.host) && !allowedHosts.includes('*')) {
        console.log(`note: requests must name this proxy by an IP address, localhost or ${allowedHosts.join(', ')} (Host header); add the names clients use with --allowed-host`);
      }
      if (adminToken === undefined && !isLoopback(options.host)) {
        console.log('note: the books (/carbon/stats, /metrics, per API key and user) are open to anyone who can reach this address: set CARBON_TRACE_ADMIN_TOKEN to close them');
      }
      if (held !== undefined) console.log(held);
    });
    const stop = () => {
      if (gridIntensity && 'current' in gridIntensity) gridIntensity.close();
      void proxy
        .close()
        .then(() => meter.close())
        .then(() => process.exit(0));
      // Requests in flight get 10 s to finish; a stuck close must not keep a service manager waiting.
      setTimeout(() => process.exit(0), 15_000).unref();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

program
  .command('key-id')
  .description("The id the fleet's books give an API key (key:…), to tell whose key a report's api_key row is. Reads the keys from standard input, one a line (kept out of ps and the shell's history), with the fleet's CARBON_TRACE_KEY_ID_SECRET.")
  .addHelpText('after', '\nExample: printf "%s\\n" "$TEAM_A_KEY" | CARBON_TRACE_KEY_ID_SECRET=… npx carbon-trace key-id')
  .action(async () => {
    const secret = process.env.CARBON_TRACE_KEY_ID_SECRET?.trim();
    if (!secret) fail("key-id needs CARBON_TRACE_KEY_ID_SECRET, the fleet's secret (a proxy without it keeps its own beside its ledger: FILE.key-id-secret)");
    const keyIds = createKeyIds(secret);
    let text = '';
    for await (const chunk of process.stdin) text += chunk;
    for (const key of text.split(/\r?\n/).map((k) => k.trim()).filter(Boolean)) {
      // A key given with its scheme or without: the proxy reads `Authorization: Bearer <key>`.
      process.stdout.write(`${keyIds.of(/^bearer\s/i.test(key) ? key : `Bearer ${key}`) ?? '(not a key)'}\n`);
    }
  });

program
  .command('report')
  .description("A period's books, grouped: from the fleet's Postgres (--db) or one proxy's ledger (--ledger), with no server.")
  .option('--db <url>', "the fleet's Postgres (or set CARBON_TRACE_DB)")
  .option('--ledger <file>', "one proxy's ledger (its idle log beside it is read too)")
  .requiredOption('--from <date>', 'start, included: a UTC date (2026-11-01) or a time with its zone (2026-11-01T08:00:00Z)')
  .option('--to <date>', 'end, not included (default: now): 2026-12-01 ends November')
  .option('--by <keys>', 'group by any of model, api_key, user, project, instance, day, hour (comma-separated, or repeated)', (value: string, previous: string) => (previous ? `${previous},${value}` : value), '')
  .addOption(new Option('--format <format>', 'output').choices(['table', 'csv', 'json']).default('table'))
  .option('--output <file>', 'write to a file instead of the standard output')
  .option('--instance <name>', "with --ledger: the proxy's name in the report (default: the host name)")
  .addHelpText('after', '\nExample: npx carbon-trace report --db "$CARBON_TRACE_DB" --from 2026-11-01 --to 2026-12-01 --by api_key,model')
  .action(async (options: { db?: string; ledger?: string; from: string; to?: string; by: string; format: 'table' | 'csv' | 'json'; output?: string; instance?: string }) => {
    if (options.db !== undefined && options.db.trim() === '') fail('--db is empty: give postgres://user:password@host:5432/db (is CARBON_TRACE_DB set in this shell?)');
    const db = options.db ?? (options.ledger === undefined ? process.env.CARBON_TRACE_DB?.trim() || undefined : undefined);
    if ((db === undefined) === (options.ledger === undefined)) fail('report reads one place: give --db URL (or CARBON_TRACE_DB) or --ledger FILE');
    let query: ReportQuery;
    try {
      query = parseReportQuery({ from: options.from, to: options.to ?? null, by: options.by });
    } catch (error) {
      fail(`--${(error as Error).message}`);
    }
    let report: Awaited<ReturnType<typeof reportFromLedger>>;
    if (db !== undefined) {
      let pool: ReturnType<typeof createFleetPool>;
      try {
        pool = createFleetPool(db, () => {});
      } catch (error) {
        fail((error as Error).message);
      }
      try {
        // Read only: a report may run as a user who can only read the books.
        report = await reportFromDatabase(pool, query);
      } catch (error) {
        if ((error as { code?: string }).code === '42P01') fail(`${redactDatabaseUrl(db)} has no carbon-trace tables: no proxy has written to it yet (proxies make them at their first connection)`);
        fail(`${redactDatabaseUrl(db)}: ${scrubbed(error, db)}`);
      } finally {
        await pool.end().catch(() => {});
      }
    } else {
      try {
        report = await reportFromLedger(options.ledger!, query, options.instance !== undefined ? { instance: options.instance } : {});
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        fail(`--ledger ${options.ledger}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
      }
    }
    const text = options.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : options.format === 'csv' ? reportCsv(report) : reportTable(report);
    if (options.output !== undefined) {
      try {
        writeFileSync(options.output, text);
      } catch (error) {
        fail(`--output ${options.output}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    } else process.stdout.write(text);
  });

program.parseAsync(process.argv).catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
