/**
 * A stand-in for a CodeCarbon-instrumented model server, so that carbon-trace can be seen at
 * work without a GPU box: an OpenAI-compatible chat-completions server on loopback that
 * answers with a small deterministic text generator and attaches an `x_carbon_trace` to every
 * response (Model Garden v2 shape plus the CPU/GPU/RAM split; on the finish_reason chunk when
 * streaming).
 *
 * Its numbers are honest estimates of its own work, made the way CodeCarbon estimates when it
 * has no power counters, and marked `measured: false`:
 * - CPU: CodeCarbon's CPU-load mode, power = TDP × load; for one process that is
 *   TDP × (process CPU seconds / (wall seconds × logical cores)). TDP defaults to 85 W,
 *   CodeCarbon's fallback when it does not know the CPU model.
 * - RAM: CodeCarbon's RAM model up to v2.x, 3 W per 8 GB, applied to this process's RSS.
 * - GPU: none, so 0 W and 0 Wh.
 * - CO2: energy × a grid intensity in gCO2eq/kWh, default 475 (CodeCarbon's world average).
 *
 * The HTTP and SSE layer is the test fixture's (test/fixtures/), so the demo exercises the
 * same wire the tests do.
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { startFixtureServer, type FixtureReply, type FixtureRequest, type FixtureServer } from '../../test/fixtures/openai-compatible-server';

export type DemoServerOptions = {
  /** Grid carbon intensity, gCO2eq per kWh. Default 475 (CodeCarbon's world average). */
  gridIntensityGPerKwh?: number;
  /** CPU thermal design power, W. Default 85 (CodeCarbon's fallback TDP). */
  cpuTdpWatts?: number;
};

const DEFAULT_GRID_INTENSITY_G_PER_KWH = 475;
const DEFAULT_CPU_TDP_WATTS = 85;
// CodeCarbon ≤ 2.x: 3 W for every 8 GB of memory.
const RAM_WATTS_PER_GB = 3 / 8;
const WH_PER_JOULE = 1 / 3600;

/**
 * Starts the demo server on 127.0.0.1 and a random port.
 *
 * @example
 * ```ts
 * const server = await startDemoServer();
 * console.log(server.baseURL); // http://127.0.0.1:<port>/v1
 * await server.close();
 * ```
 */
export async function startDemoServer(options: DemoServerOptions = {}): Promise<FixtureServer> {
  const gridIntensity = options.gridIntensityGPerKwh ?? DEFAULT_GRID_INTENSITY_G_PER_KWH;
  const tdpWatts = options.cpuTdpWatts ?? DEFAULT_CPU_TDP_WATTS;
  const cores = Math.max(1, cpus().length);

  return startFixtureServer((request) => {
    const cpuBefore = process.cpuUsage();
    const wallBefore = performance.now();
    const reply = generate(request);
    const cpuUsed = process.cpuUsage(cpuBefore);
    const durationSeconds = Math.max((performance.now() - wallBefore) / 1000, 1e-6);

    const cpuSeconds = (cpuUsed.user + cpuUsed.system) / 1e6;
    const cpuPowerWatts = tdpWatts * Math.min(1, cpuSeconds / (durationSeconds * cores));
    const cpuEnergyWh = cpuPowerWatts * durationSeconds * WH_PER_JOULE;
    const ramPowerWatts = (process.memoryUsage().rss / 1024 ** 3) * RAM_WATTS_PER_GB;
    const ramEnergyWh = ramPowerWatts * durationSeconds * WH_PER_JOULE;
    const energyWh = cpuEnergyWh + ramEnergyWh;

    reply.trace = {
      emissions_g_co2: (energyWh / 1000) * gridIntensity,
      energy_consumed_wh: energyWh,
      cpu_energy_wh: cpuEnergyWh,
      gpu_energy_wh: 0,
      ram_energy_wh: ramEnergyWh,
      cpu_power_watts: cpuPowerWatts,
      gpu_power_watts: 0,
      ram_power_watts: ramPowerWatts,
      duration_seconds: durationSeconds,
      prompt_tokens: reply.usage!.prompt_tokens,
      completion_tokens: reply.usage!.completion_tokens,
      measured: false,
      tracking_active: true,
    };
    return reply;
  });
}

// ---- the "model": a deterministic generator that does real work per token -----------------

const SENTENCES = [
  'This answer comes from a small deterministic stand-in model.',
  'Every token it writes costs a fixed amount of real CPU work.',
  'The server measures that work the way CodeCarbon estimates without power counters.',
  'Point the demo at a real CodeCarbon-instrumented server to see measured numbers.',
  'Energy is reported in kilowatt-hours and emissions in kilograms of CO2 equivalent.',
];

function generate(request: FixtureRequest): FixtureReply {
  const prompt = (request.body.messages ?? []).map((m) => contentText(m.content)).join(' ');
  const promptTokens = countTokens(prompt);
  const tools = (request.body.tools ?? []) as Array<{ function?: { name?: string; parameters?: JsonSchema } }>;
  const hasToolResult = (request.body.messages ?? []).some((m) => m.role === 'tool');

  if (tools.length > 0 && !hasToolResult) {
    const fn = tools[0]!.function ?? {};
    const args = JSON.stringify(sampleFor(fn.parameters, prompt));
    work(countTokens(args));
    return { toolCalls: [{ name: fn.name ?? 'tool', arguments: args }], usage: { prompt_tokens: promptTokens, completion_tokens: countTokens(args) } };
  }

  const format = request.body.response_format as { type?: string; json_schema?: { schema?: JsonSchema } } | undefined;
  let content: string;
  if (format?.type === 'json_schema' || format?.type === 'json_object') {
    content = JSON.stringify(sampleFor(format.json_schema?.schema ?? { type: 'object', properties: { answer: { type: 'string' } } }, prompt));
  } else {
    const first = hash(prompt) % SENTENCES.length;
    content = [0, 1].map((i) => SENTENCES[(first + i) % SENTENCES.length]).join(' ');
  }
  const completionTokens = countTokens(content);
  work(completionTokens);
  return { content, usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens } };
}

type JsonSchema = { type?: string | string[]; properties?: Record<string, JsonSchema>; items?: JsonSchema; enum?: unknown[] };

/** A value that satisfies a JSON schema, with strings taken from the prompt. */
function sampleFor(schema: JsonSchema | undefined, prompt: string): unknown {
  const type = Array.isArray(schema?.type) ? schema.type[0] : schema?.type;
  if (schema?.enum?.length) return schema.enum[0];
  switch (type) {
    case 'object':
      return Object.fromEntries(Object.entries(schema?.properties ?? {}).map(([k, v]) => [k, sampleFor(v, prompt)]));
    case 'array':
      return [sampleFor(schema?.items, prompt)];
    case 'number':
    case 'integer':
      return 42;
    case 'boolean':
      return true;
    default:
      return prompt.match(/\b[A-Z][a-z]+\b/g)?.at(-1) ?? 'demo';
  }
}

/** Simulated inference: a fixed amount of real CPU work per token, so energy tracks tokens. */
function work(tokens: number): void {
  let x = 1;
  for (let i = 0; i < tokens * 40_000; i++) x = next(x);
  if (x === 0) console.log(''); // keeps the loop from being optimised away
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: { text?: string }) => p?.text ?? '').join(' ');
  return '';
}

function countTokens(text: string): number {
  return Math.max(1, text.split(/\s+/).filter(Boolean).length);
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

function next(x: number): number {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}
