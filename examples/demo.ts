/**
 * `npm run demo`: starts the embedded demo server (or uses --base-url), runs the AI SDK and
 * LangChain.js through their real clients with carbon-trace attached, and prints one line per
 * model call and the totals per model.
 *
 *   npm run demo
 *   npm run demo -- --base-url http://gpu-box:8000/v1 --model llama-3.1-8b [--api-key KEY]
 *   npm run demo -- --grid-intensity 56   (gCO2eq/kWh used by the embedded server; default 475)
 *   npm run demo -- --help
 */
import { parseArgs } from 'node:util';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { CarbonTracker, type CarbonMetrics, type CarbonTotals } from 'carbon-trace';
import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
import { CarbonTraceCallbackHandler } from 'carbon-trace/langchain';
import { startDemoServer } from './server/demo-server';

const HELP = `Usage: npm run demo -- [options]

Runs the AI SDK and LangChain.js, with carbon-trace attached, against a model server and prints
the carbon of every call and the totals per model.

Options:
  --base-url <url>         an OpenAI-compatible server (…/v1); default: the embedded demo server
  --model <id>             the model to call (default: demo-model)
  --api-key <key>          the server's API key (default: $CARBON_TRACE_API_KEY or not-needed)
  --grid-intensity <g>     gCO2eq per kWh the embedded server uses (default: 475, world average)
  -h, --help               this help
`;

/** One line, no stack trace, a non-zero exit: what a CLI owes a user who mistyped. */
function fail(message: string): never {
  console.error(`carbon-trace demo: ${message}\nRun npm run demo -- --help for the options.`);
  process.exit(1);
}

let parsed: ReturnType<typeof parseArguments>;
function parseArguments() {
  return parseArgs({
    options: {
      'base-url': { type: 'string' },
      model: { type: 'string', default: 'demo-model' },
      'api-key': { type: 'string', default: process.env.CARBON_TRACE_API_KEY ?? 'not-needed' },
      'grid-intensity': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
try {
  parsed = parseArguments();
} catch (error) {
  fail((error as Error).message);
}
const args = parsed.values;
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
const demo = args['base-url'] ? undefined : await startDemoServer({ gridIntensityGPerKwh: gridIntensity });
const baseURL = args['base-url'] ?? demo!.baseURL;
const modelId = args.model!;
const apiKey = args['api-key']!;

const tracker = new CarbonTracker();
const rows: Array<{ step: string; metrics: CarbonMetrics | undefined }> = [];
let step = '';
const onMetrics = (metrics: CarbonMetrics | undefined) => void rows.push({ step, metrics });

// ---- Vercel AI SDK ------------------------------------------------------------------------
const garden = createOpenAICompatible({ name: 'garden', baseURL, apiKey, includeUsage: true });
const aiModel = wrapLanguageModel({ model: garden(modelId), middleware: carbonTraceMiddleware({ tracker, onMetrics }) });

step = 'AI SDK   generateText';
await generateText({ model: aiModel, prompt: 'Why does inference use energy?' });

step = 'AI SDK   streamText';
const streamed = streamText({ model: aiModel, prompt: 'Explain grid carbon intensity.' });
await streamed.consumeStream();

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

// ---- LangChain.js -------------------------------------------------------------------------
const handler = new CarbonTraceCallbackHandler({ tracker, onMetrics });
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

await demo?.close();

// ---- report -------------------------------------------------------------------------------
console.log(`\ncarbon-trace demo against ${demo ? 'the embedded demo server (estimates, no GPU)' : baseURL}, model ${modelId}\n`);
printTable(
  ['#', 'call', 'energy', 'CO2eq', 'CPU / GPU / RAM', 'method'],
  rows.map(({ step, metrics: m }, i) => [
    String(i + 1),
    step,
    m?.energyKwh === undefined ? '—' : energy(m.energyKwh),
    m?.gwpKgco2eq === undefined ? '—' : mass(m.gwpKgco2eq),
    m ? [m.cpuEnergyKwh, m.gpuEnergyKwh, m.ramEnergyKwh].map((x) => (x === undefined ? '—' : energy(x))).join(' / ') : 'no trace',
    m ? (m.measured ? 'measured' : 'estimated') : '—',
  ]),
);

console.log('\nTotals per model\n');
const totalsRow = (name: string, t: CarbonTotals) => [
  name,
  `${t.tracedCalls}/${t.calls}`,
  energy(t.energyKwh),
  mass(t.gwpKgco2eq),
  [t.cpuEnergyKwh, t.gpuEnergyKwh, t.ramEnergyKwh].map(energy).join(' / '),
  `${t.measuredCalls}/${t.tracedCalls}`,
];
printTable(
  ['model', 'traced/calls', 'energy', 'CO2eq', 'CPU / GPU / RAM', 'measured/traced'],
  [...Object.entries(tracker.byModel()).map(([name, t]) => totalsRow(name, t)), totalsRow('all', tracker.totals())],
);

/** Fails in one line when the server cannot be reached, before any model call is attempted. */
async function reachable(baseURL: string): Promise<void> {
  try {
    await fetch(`${baseURL.replace(/\/$/, '')}/models`, { signal: AbortSignal.timeout(5_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    fail(`cannot reach --base-url ${baseURL}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
}

function energy(kwh: number): string {
  return withPrefix(kwh * 1000, 'Wh');
}

function mass(kg: number): string {
  return withPrefix(kg * 1000, 'g');
}

/** A value in base units with an SI prefix that keeps 1–999 before the point. */
function withPrefix(value: number, unit: string): string {
  if (value === 0) return `0 ${unit}`;
  const prefixes = [['k', 1e3], ['', 1], ['m', 1e-3], ['µ', 1e-6], ['n', 1e-9], ['p', 1e-12]] as const;
  const [prefix, scale] = prefixes.find(([, s]) => Math.abs(value) >= s) ?? prefixes[prefixes.length - 1]!;
  return `${(value / scale).toPrecision(3)} ${prefix}${unit}`;
}

function printTable(header: string[], body: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const row of body) console.log(line(row));
}
