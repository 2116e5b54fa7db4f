/**
 * `npm run demo`: a toy model server behind the real `carbon-trace proxy` (or your server with
 * --base-url), the AI SDK and LangChain.js calling it with carbon-trace attached, and the carbon
 * of every call and the totals per model printed. Every number comes from carbon-trace/server:
 * on this machine's counters where readable, CodeCarbon's estimate otherwise — except one call to
 * an API-style model, which has no trace and is estimated with EcoLogits' method, on a row of its own.
 *
 *   npm run demo
 *   npm run demo -- --keep                      (stay up: open the dashboard, Ctrl-C to stop)
 *   npm run demo -- --grid-intensity 56         (gCO2eq/kWh the proxy books; default 475)
 *   npm run demo -- --base-url http://gpu-box:8787/v1 --model llama-3.1-8b [--api-key KEY]
 *   npm run demo -- --help
 */
import { parseArgs } from 'node:util';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { CarbonTracker, formatEmissions, formatEnergy, type CarbonEstimate, type CarbonMetrics, type CarbonTotals } from 'carbon-trace';
import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
import { CarbonTraceCallbackHandler } from 'carbon-trace/langchain';
import { startProxiedToyModel } from './server/connection';

const HELP = `Usage: npm run demo -- [options]

Runs the AI SDK and LangChain.js, with carbon-trace attached, against a model server and prints
the carbon of every call and the totals per model. Without --base-url, a toy model server runs
behind the real carbon-trace proxy on loopback, which measures (or, without power counters,
estimates as CodeCarbon does) what each call cost; one more call plays an API provider that
sends no trace, and shows its EcoLogits estimate, labelled as such.

Options:
  --base-url <url>         your OpenAI-compatible server or carbon-trace proxy (…/v1)
  --model <id>             the model to call (default: toy-model)
  --api-key <key>          the server's API key (default: $CARBON_TRACE_API_KEY or not-needed)
  --grid-intensity <g>     gCO2eq per kWh the local proxy books (default: 475, world average)
  --keep                   stay up after the calls, to look at the dashboard (Ctrl-C stops)
  -h, --help               this help
`;

/** One line, no stack trace, a non-zero exit: what a CLI owes a user who mistyped. */
function fail(message: string): never {
  console.error(`carbon-trace demo: ${message}\nRun npm run demo -- --help for the options.`);
  process.exit(1);
}

function parseArguments() {
  return parseArgs({
    options: {
      'base-url': { type: 'string' },
      model: { type: 'string' },
      'api-key': { type: 'string', default: process.env.CARBON_TRACE_API_KEY ?? 'not-needed' },
      'grid-intensity': { type: 'string' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  }).values;
}

let args: ReturnType<typeof parseArguments>;
try {
  args = parseArguments();
} catch (error) {
  fail((error as Error).message);
}
if (args.help) {
  console.log(HELP);
  process.exit(0);
}

const gridIntensity = args['grid-intensity'] === undefined ? undefined : Number(args['grid-intensity']);
if (gridIntensity !== undefined && !(gridIntensity >= 0)) fail(`--grid-intensity takes gCO2eq per kWh, a number ≥ 0 (got ${JSON.stringify(args['grid-intensity'])})`);
if (args['base-url'] !== undefined) {
  try {
    new URL(args['base-url']);
  } catch {
    fail(`--base-url is not a URL: ${JSON.stringify(args['base-url'])}`);
  }
  await reachable(args['base-url']);
}

const local = args['base-url'] ? undefined : await startProxiedToyModel(gridIntensity === undefined ? {} : { gridIntensityGPerKwh: gridIntensity });
const baseURL = args['base-url'] ?? local!.baseURL;
const modelId = args.model ?? (local ? local.model : 'toy-model');
const apiKey = args['api-key']!;

const tracker = new CarbonTracker();
const rows: Array<{ step: string; metrics: CarbonMetrics | undefined; estimate?: CarbonEstimate | undefined }> = [];
let step = '';
const onMetrics = (metrics: CarbonMetrics | undefined, context: { estimate?: CarbonEstimate }) => void rows.push({ step, metrics, estimate: context.estimate });

try {
  // ---- Vercel AI SDK ----------------------------------------------------------------------
  const provider = createOpenAICompatible({ name: 'demo', baseURL, apiKey, includeUsage: true });
  const aiModel = wrapLanguageModel({ model: provider(modelId), middleware: carbonTraceMiddleware({ tracker, onMetrics, provider: 'demo' }) });

  step = 'AI SDK   generateText';
  await generateText({ model: aiModel, prompt: 'Why does inference use energy?' });

  step = 'AI SDK   streamText';
  await streamText({ model: aiModel, prompt: 'Explain grid carbon intensity.' }).consumeStream();

  step = 'AI SDK   tool loop';
  await generateText({
    model: aiModel,
    prompt: 'What is the weather in Paris?',
    tools: {
      weather: tool({
        description: 'The weather in a city',
        inputSchema: jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
        execute: async ({ city }) => ({ city, sky: 'sunny' }),
      }),
    },
    stopWhen: stepCountIs(4),
  });

  // An API provider never sends a trace: the toy model answering directly (not through the
  // proxy) plays one, under the name of a model EcoLogits knows, and is estimated instead.
  if (local) {
    const api = createOpenAI({ baseURL: local.directURL, apiKey: 'sk-demo' });
    const apiModel = wrapLanguageModel({
      model: api.chat('gpt-4o-mini'),
      middleware: carbonTraceMiddleware({ tracker, onMetrics, estimate: true, onWarning: false }),
    });
    step = 'AI SDK   API model, no trace';
    await generateText({ model: apiModel, prompt: 'Summarise the notes above.' });
  }

  // ---- LangChain.js -----------------------------------------------------------------------
  const handler = new CarbonTraceCallbackHandler({ tracker, onMetrics, provider: 'demo' });
  const chat = new ChatOpenAI({ model: modelId, apiKey, configuration: { baseURL, fetch: handler.fetch } });

  step = 'LangChain invoke';
  await chat.invoke('What is a watt-hour?', { callbacks: [handler] });

  step = 'LangChain stream';
  for await (const _chunk of await chat.stream('And a kilowatt-hour?', { callbacks: [handler] })) {
    // drain
  }

  step = 'LangGraph two-node graph';
  const graph = new StateGraph(MessagesAnnotation)
    .addNode('draft', async (state) => ({ messages: [await chat.invoke(state.messages)] }))
    .addNode('review', async (state) => ({ messages: [await chat.invoke([...state.messages, { role: 'user', content: 'Shorten it.' }])] }))
    .addEdge(START, 'draft')
    .addEdge('draft', 'review')
    .addEdge('review', END)
    .compile();
  await graph.invoke({ messages: [{ role: 'user', content: 'Write a note on cooling.' }] }, { callbacks: [handler] });
} catch (error) {
  await local?.close();
  const cause = (error as { cause?: { message?: string } }).cause;
  fail(`a model call failed: ${(error as Error).message}${cause?.message ? ` (${cause.message})` : ''}`);
}

// ---- report ---------------------------------------------------------------------------------
// The emissions columns are headed CO2eq: the cells leave it out.
const mass = (kg: number | undefined) => formatEmissions(kg, { co2eq: false });
console.log(`\ncarbon-trace demo against ${local ? 'a toy model behind the carbon-trace proxy' : baseURL}, model ${modelId}`);
if (local) console.log(`meter: ${local.meter.describe()}`);
console.log('');
printTable(
  ['#', 'call', 'energy', 'CO2eq', 'CPU / GPU / RAM', 'method'],
  rows.map(({ step, metrics: m, estimate: e }, i) =>
    e && !m
      ? // Labelled for what it is: a model of a typical datacenter, not a measurement.
        [String(i + 1), step, `~${formatEnergy(e.energyKwh)}`, `~${mass(e.gwpKgco2eq)}`, 'no trace', `EcoLogits estimate (${e.inputs.modelId}, ${e.inputs.zone})`]
      : [
          String(i + 1),
          step,
          formatEnergy(m?.energyKwh),
          mass(m?.gwpKgco2eq),
          m ? [m.cpuEnergyKwh, m.gpuEnergyKwh, m.ramEnergyKwh].map(formatEnergy).join(' / ') : 'no trace',
          m ? (m.measured ? 'measured' : 'estimated') : '—',
        ],
  ),
);

console.log('\nTotals per model\n');
const totalsRow = (name: string, t: CarbonTotals) => [
  name,
  `${t.tracedCalls}/${t.calls}`,
  // No call gave the figure: unknown, not zero.
  t.callsWith.energyKwh > 0 ? formatEnergy(t.energyKwh) : '—',
  t.callsWith.gwpKgco2eq > 0 ? mass(t.gwpKgco2eq) : '—',
  [t.cpuEnergyKwh, t.gpuEnergyKwh, t.ramEnergyKwh].map((kwh, i) => (t.callsWith[(['cpuEnergyKwh', 'gpuEnergyKwh', 'ramEnergyKwh'] as const)[i]!] > 0 ? formatEnergy(kwh) : '—')).join(' / '),
  `${t.measuredCalls}/${t.tracedCalls}`,
];
printTable(
  ['model', 'traced/calls', 'energy', 'CO2eq', 'CPU / GPU / RAM', 'measured/traced'],
  [...Object.entries(tracker.byModel()).map(([name, t]) => totalsRow(name, t)), totalsRow('all', tracker.totals())],
);

const estimated = Object.entries(tracker.estimatesByModel());
if (estimated.length > 0) {
  console.log('\nEstimated, not measured (EcoLogits, for calls without a trace; never in the totals above)\n');
  printTable(
    ['model', 'estimated calls', 'energy', 'CO2eq', 'range of the last call'],
    estimated.map(([name, t]) => {
      const last = [...rows].reverse().find((r) => r.estimate?.inputs.modelId === name)?.estimate;
      const range = last?.min && last.max ? `${mass(last.min.gwpKgco2eq)} – ${mass(last.max.gwpKgco2eq)}` : '—';
      return [name, String(t.tracedCalls), `~${formatEnergy(t.energyKwh)}`, `~${mass(t.gwpKgco2eq)}`, range];
    }),
  );
}

if (local) {
  const stats = local.meter.stats();
  console.log(
    `\nThe proxy's books: ${formatEnergy(stats.totalJoules / 3.6e6)} drawn since it started = ${formatEnergy(stats.attributedJoules / 3.6e6)} attributed to ` +
      `${stats.requests} requests + ${formatEnergy(stats.idleJoules / 3.6e6)} idle. The calls above add up to ${formatEnergy(tracker.totals().energyKwh)}.`,
  );
  if (args.keep) {
    console.log(`\ndashboard: ${local.proxyURL}/carbon   (model API: ${local.baseURL}; Ctrl-C to stop)`);
    process.once('SIGINT', () => void local.close().then(() => process.exit(0)));
  } else {
    console.log(`\nRun npm run demo -- --keep to look at the proxy's live dashboard.`);
    await local.close();
  }
}

/** Fails in one line when the server cannot be reached, before any model call is attempted. */
async function reachable(url: string): Promise<void> {
  try {
    await fetch(`${url.replace(/\/$/, '')}/models`, { signal: AbortSignal.timeout(5_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    fail(`cannot reach --base-url ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
}

function printTable(header: string[], body: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const row of body) console.log(line(row));
}
