// Regenerates src/estimate/data/ecologits.ts (and the licence beside it) from an EcoLogits source
// tree, so that carbon-trace/estimate follows one named EcoLogits release. Usage:
//
//   git clone --depth 1 --branch 0.9.3 https://github.com/mlco2/ecologits /tmp/ecologits
//   node scripts/refresh-ecologits.mjs /tmp/ecologits [commit] [--out dir]
//
// --out writes elsewhere than src/estimate/data (the tests do).
// It reads, from that release:
//   ecologits/data/models.json       the model repository (providers, ids, aliases, parameters)
//   ecologits/impacts/llm.py         the method's constants (GPU energy and latency regressions…)
//   ecologits/tracers/utils.py       each provider's datacenter PUE and location
//   ecologits/data/electricity_mixes.csv  each zone's electricity mix (the gwp column only)
//   LICENSE                          MPL-2.0, copied beside the generated data
//   pyproject.toml                   the release's version
//
// The formulas themselves live in src/estimate/llm-impacts.ts, written by hand after llm.py. The
// script prints whether llm.py changed since the release they follow: when it has, read the diff
// before publishing, and update the agreement figures in test/estimate/.
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

// sha256 of ecologits/impacts/llm.py in the release llm-impacts.ts was written after (0.9.3).
const METHOD_SOURCE_SHA256 = 'a9246a676ca7b5f409e852a9cb93c1a1b4d6db9dfd0b420d7651ab520adbf092';

const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const outDir = outAt === -1 ? resolve(import.meta.dirname, '../src/estimate/data') : resolve(args[outAt + 1] ?? '.');
if (outAt !== -1) args.splice(outAt, 2);
const [root, commit] = args;
if (!root) {
  console.error('usage: node scripts/refresh-ecologits.mjs <ecologits source tree> [commit] [--out dir]');
  process.exit(1);
}
const read = (path) => readFileSync(join(root, path), 'utf8');
const fail = (message) => {
  console.error(`refresh-ecologits: ${message}`);
  process.exit(1);
};

const version = /^version\s*=\s*"([^"]+)"/m.exec(read('pyproject.toml'))?.[1] ?? fail('no version in pyproject.toml');

// ---- constants of the method (impacts/llm.py) -------------------------------------------------
const llmSource = read('ecologits/impacts/llm.py');
const WANTED = [
  'MODEL_QUANTIZATION_BITS', 'GPU_ENERGY_ALPHA', 'GPU_ENERGY_BETA', 'GPU_ENERGY_GAMMA', 'LATENCY_ALPHA', 'LATENCY_BETA',
  'LATENCY_GAMMA', 'GPU_MEMORY', 'GPU_EMBODIED_IMPACT_GWP', 'SERVER_GPUS', 'SERVER_POWER', 'SERVER_EMBODIED_IMPACT_GWP',
  'HARDWARE_LIFESPAN', 'BATCH_SIZE',
];
const constants = {};
for (const name of WANTED) {
  const expression = new RegExp(`^${name}\\s*=\\s*([^#\\n]+)`, 'm').exec(llmSource)?.[1]?.trim() ?? fail(`no ${name} in llm.py`);
  // Numbers and products of numbers only (HARDWARE_LIFESPAN = 3 * 365 * 24 * 60 * 60).
  if (!/^[-+0-9.e\s*]+$/i.test(expression)) fail(`${name} = ${expression} is not a number or a product of numbers`);
  constants[name] = expression.split('*').map(Number).reduce((a, b) => a * b, 1);
  if (!Number.isFinite(constants[name])) fail(`${name} = ${expression} did not evaluate to a number`);
}
const methodSha256 = createHash('sha256').update(llmSource).digest('hex');

// ---- providers (tracers/utils.py PROVIDER_CONFIG_MAP) -----------------------------------------
const utilsSource = read('ecologits/tracers/utils.py');
const providers = {};
const number = (text) => {
  const range = /RangeValue\(\s*min\s*=\s*([0-9.]+)\s*,\s*max\s*=\s*([0-9.]+)\s*\)/.exec(text);
  return range ? { min: Number(range[1]), max: Number(range[2]) } : Number(text);
};
for (const match of utilsSource.matchAll(/"([a-z_]+)":\s*_ProviderConfig\(([\s\S]*?)\n\s*\)/g)) {
  const body = match[2];
  const location = /datacenter_location\s*=\s*"([A-Z]{3})"/.exec(body)?.[1];
  const pue = /datacenter_pue\s*=\s*(RangeValue\([^)]*\)|[0-9.]+)/.exec(body)?.[1];
  if (!location || !pue) fail(`cannot read the config of provider ${match[1]}`);
  providers[match[1]] = { datacenterLocation: location, datacenterPue: number(pue) };
}
if (Object.keys(providers).length === 0) fail('no PROVIDER_CONFIG_MAP entries in tracers/utils.py');

// ---- models (data/models.json) ----------------------------------------------------------------
const repository = JSON.parse(read('ecologits/data/models.json'));
const WARNING_BITS = { 'model-arch-not-released': 1, 'model-arch-multimodal': 2 };
const paramsOf = (value) => (typeof value === 'number' ? value : [value.min, value.max]);
const models = {};
for (const m of repository.models ?? []) {
  if (!Object.hasOwn(providers, m.provider)) fail(`model ${m.name} has a provider without a config: ${m.provider}`);
  const p = m.architecture.parameters;
  const parameters = m.architecture.type === 'moe' ? { total: paramsOf(p.total), active: paramsOf(p.active) } : paramsOf(p);
  let warnings = 0;
  for (const code of m.warnings ?? []) warnings |= WARNING_BITS[code] ?? fail(`unknown warning code ${code}`);
  (models[m.provider] ??= []).push(warnings === 0 ? [m.name, parameters] : [m.name, parameters, warnings]);
}
const aliases = {};
for (const a of repository.aliases ?? []) {
  if (!models[a.provider]?.some(([name]) => name === a.alias)) fail(`alias ${a.name} points to an unknown model ${a.alias}`);
  (aliases[a.provider] ??= {})[a.name] = a.alias;
}
const modelCount = Object.values(models).reduce((n, list) => n + list.length, 0);

// ---- electricity mixes (data/electricity_mixes.csv) -------------------------------------------
// Columns name,adpe,pe,gwp,wue; only gwp (kgCO2eq/kWh) is carried. Zones are ISO 3166-1 alpha-3,
// and WOR for the world.
const [header, ...rows] = read('ecologits/data/electricity_mixes.csv').split(/\r?\n/).filter((line) => line.trim() !== '');
const columns = (header ?? '').split(',').map((c) => c.trim());
const nameAt = columns.indexOf('name');
const gwpAt = columns.indexOf('gwp');
if (nameAt === -1 || gwpAt === -1) fail('electricity_mixes.csv has no name or gwp column');
const mixes = {};
for (const row of rows) {
  const cells = row.split(',').map((c) => c.trim());
  const zone = cells[nameAt];
  const gwp = Number(cells[gwpAt]);
  if (!/^[A-Z]{3}$/.test(zone ?? '')) fail(`electricity_mixes.csv: zone ${JSON.stringify(zone)} is not a three-letter code`);
  if (cells[gwpAt] === '' || !Number.isFinite(gwp) || gwp < 0) fail(`electricity_mixes.csv: gwp ${JSON.stringify(cells[gwpAt])} of ${zone} is not a number ≥ 0`);
  if (Object.hasOwn(mixes, zone)) fail(`electricity_mixes.csv: zone ${zone} appears twice`);
  mixes[zone] = gwp;
}
if (Object.keys(mixes).length === 0) fail('electricity_mixes.csv has no rows');

// ---- output -----------------------------------------------------------------------------------
const source = `EcoLogits ${version} (github.com/mlco2/ecologits${commit ? `, commit ${commit}` : ''})`;
const out = `// Generated by scripts/refresh-ecologits.mjs from ${source}. Do not edit.
//
// This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy
// of the MPL was not distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
// The licence text is in ECOLOGITS-LICENSE beside this file. The data is EcoLogits' own, from the
// files named on each export, only re-encoded (warning codes as bits, parameter ranges as pairs).

/**
 * The EcoLogits release the data and constants come from.
 *
 * @example
 * \`\`\`ts
 * import { ECOLOGITS_RELEASE } from 'carbon-trace/estimate';
 * console.log(\`EcoLogits \${ECOLOGITS_RELEASE.version}\`);
 * \`\`\`
 */
export const ECOLOGITS_RELEASE = ${JSON.stringify({ version, repository: 'mlco2/ecologits', ...(commit ? { commit } : {}) })} as const;

/** sha256 of ecologits/impacts/llm.py in that release. */
export const ECOLOGITS_METHOD_SHA256 = '${methodSha256}';

/** The method's constants, as named in ecologits/impacts/llm.py (units there: GB, kW, kgCO2eq, s, Wh per token). */
export const ECOLOGITS_LLM_CONSTANTS = ${JSON.stringify(constants, null, 2)} as const;

/** Each provider's datacenter location (ISO 3166-1 alpha-3) and PUE, from PROVIDER_CONFIG_MAP in ecologits/tracers/utils.py. */
export const ECOLOGITS_PROVIDERS: Record<string, { datacenterLocation: string; datacenterPue: number | { min: number; max: number } }> = ${JSON.stringify(providers, null, 2)};

/**
 * ecologits/data/models.json, by provider: [name, parameters, warnings?]. Parameters are in
 * billions: a number, a [min, max] range, or { total, active } for a mixture of experts.
 * Warnings are bits: 1 model-arch-not-released, 2 model-arch-multimodal.
 */
export const ECOLOGITS_MODELS: Record<string, Array<[string, EcoLogitsParameters] | [string, EcoLogitsParameters, number]>> = ${JSON.stringify(models)};

/**
 * The electricity mixes of ecologits/data/electricity_mixes.csv: each zone's gwp, kgCO2eq per kWh
 * (its adpe, pe and wue columns are not carried). Zones are ISO 3166-1 alpha-3, and WOR for the world.
 */
export const ECOLOGITS_ELECTRICITY_MIXES_GWP: Record<string, number> = ${JSON.stringify(mixes)};

/** The aliases of ecologits/data/models.json, by provider: alias → model name. */
export const ECOLOGITS_ALIASES: Record<string, Record<string, string>> = ${JSON.stringify(aliases, null, 2)};

/** A parameter count in billions, or a range of them. */
export type EcoLogitsCount = number | [number, number];
/** A dense model's parameter count, or a mixture of experts' total and active counts. */
export type EcoLogitsParameters = EcoLogitsCount | { total: EcoLogitsCount; active: EcoLogitsCount };
`;
const target = join(outDir, 'ecologits.ts');
writeFileSync(target, out);
copyFileSync(join(root, 'LICENSE'), join(outDir, 'ECOLOGITS-LICENSE'));
console.log(
  `wrote ${target}: ${modelCount} models, ${repository.aliases?.length ?? 0} aliases, ${Object.keys(providers).length} providers, ` +
    `${Object.keys(mixes).length} electricity mixes from ${source}`,
);
if (methodSha256 !== METHOD_SOURCE_SHA256) {
  console.log(
    `note: ecologits/impacts/llm.py (sha256 ${methodSha256}) is not the file src/estimate/llm-impacts.ts follows ` +
      `(${METHOD_SOURCE_SHA256}): compare the formulas, then update METHOD_SOURCE_SHA256 and the agreement figures in test/estimate/`,
  );
}
