// Checks the package as users receive it: packs it, lints the tarball with publint and
// attw, then unpacks it into a scratch node_modules and imports every entry point from
// ESM and CJS. Run after `npm run build`.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const scratch = join(root, '.tmp', 'package-check');
const run = (cmd, args, cwd = root) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });

rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });

// --ignore-scripts: `prepare` would build again; this runs after `npm run build`.
const [{ filename }] = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch]));
const tarball = join(scratch, filename);
console.log(`packed ${filename}`);

console.log(run('npx', ['publint', 'run', tarball, '--strict']).trim());
console.log(run('npx', ['attw', tarball, '--format', 'table']).trim());

// Unpacked below the repository so that peers (zod, ai, @langchain/core) resolve from the
// project's node_modules, as they would from the user's.
const installed = join(scratch, 'node_modules', 'carbon-trace');
mkdirSync(installed, { recursive: true });
run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);

const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
// No dependency is bundled into dist: each is installed beside the package, at the version npm
// resolves (esbuild marks what it bundles from node_modules with a comment).
const shipped = run('find', [join(installed, 'dist'), '-name', '*.*js']).trim().split('\n');
const bundled = shipped.filter((file) => /^\/\/ node_modules\//m.test(readFileSync(file, 'utf8')));
if (bundled.length > 0) throw new Error(`dist bundles code from node_modules: ${bundled.join(', ')} (add the package to tsup's external)`);
for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies })) {
  if (shipped.some((file) => file.split('/').pop().startsWith(`${dep.replace(/^@.*\//, '')}-`))) throw new Error(`dist has a chunk named after the dependency ${dep}: it was bundled`);
}
console.log(`no dependency bundled into dist (${shipped.length} files)`);
const entries = Object.keys(pkg.exports).filter((key) => key !== './package.json');
const specifiers = entries.map((key) => (key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`));
// What each entry must export (functions and classes), checked from both module systems.
const expectations = {
  'carbon-trace': ['parseCarbonTrace', 'extractCarbonMetrics', 'sumCarbonMetrics', 'createCarbonTraceAccumulator', 'getCarbonMetrics', 'CarbonTracker', 'withGridIntensity', 'isGridIntensityProvider', 'toEmissionsCsv', 'toBoAmpsReport', 'formatEnergy', 'formatEmissions'],
  'carbon-trace/ai-sdk': ['carbonTraceMiddleware', 'getCarbonMetrics'],
  'carbon-trace/langchain': ['CarbonTraceCallbackHandler', 'getCarbonMetrics'],
  'carbon-trace/otel': ['createOtelCarbonRecorder', 'carbonSpanAttributes'],
  'carbon-trace/grid': ['withGridIntensity', 'gridIntensityOfZone', 'createElectricityMapsProvider', 'gridProviderFromOptions'],
  'carbon-trace/server': ['withCarbonTrace', 'createEnergyMeter', 'raplSource', 'nvmlSource', 'amdSmiSource', 'powermetricsSource', 'estimateSource', 'toNodeListener'],
  'carbon-trace/estimate': ['estimateCallImpact', 'findEstimateModel', 'estimateProviders', 'getCarbonEstimate'],
};

const esm = specifiers
  .map((s) => `{ const m = await import(${JSON.stringify(s)}); check(${JSON.stringify(s)}, m); }`)
  .join('\n');
const cjs = specifiers
  .map((s) => `{ const m = require(${JSON.stringify(s)}); check(${JSON.stringify(s)}, m); }`)
  .join('\n');
const checkFn = `const expected = ${JSON.stringify(expectations)};
function check(s, m) {
  const names = expected[s];
  if (!names) throw new Error('no expected exports listed for ' + s);
  for (const name of names) if (typeof m[name] !== 'function') throw new Error(s + ' lacks ' + name);
  console.log('  ' + s + ': ' + Object.keys(m).length + ' exports');
}
// The middleware loads carbon-trace/estimate on demand: that import must resolve in both builds.
async function checkEstimate(aiSdk) {
  const middleware = aiSdk.carbonTraceMiddleware({ estimate: true, onWarning: false });
  const result = await middleware.wrapGenerate({
    doGenerate: async () => ({ usage: { outputTokens: 100 }, response: { body: {} } }),
    params: {},
    model: { provider: 'openai.chat', modelId: 'gpt-4o-mini' },
  });
  const estimate = aiSdk.getCarbonEstimate(result);
  if (!(estimate && estimate.trackingMethod === 'ecologits' && estimate.energyKwh > 0)) throw new Error('the middleware gave no estimate');
  console.log('  estimate through the middleware: ' + estimate.energyKwh + ' kWh');
}
// The formatters the quickstarts print with: the same text from both builds.
function checkFormat(core) {
  const text = core.formatEnergy(0.00000017) + ', ' + core.formatEmissions(3.2);
  if (text !== '170 µWh, 3.20 kg CO2eq') throw new Error('the formatters gave ' + JSON.stringify(text));
  console.log('  formatters: ' + text);
}`;
writeFileSync(join(scratch, 'smoke.mjs'), `${checkFn}\n${esm}\ncheckFormat(await import('carbon-trace'));\nawait checkEstimate(await import('carbon-trace/ai-sdk'));\n`);
writeFileSync(join(scratch, 'smoke.cjs'), `${checkFn}\n${cjs}\ncheckFormat(require('carbon-trace'));\ncheckEstimate(require('carbon-trace/ai-sdk')).catch((e) => { console.error(e); process.exit(1); });\n`);
console.log('ESM import:');
console.log(run('node', ['smoke.mjs'], scratch).trimEnd());
console.log('CJS require:');
console.log(run('node', ['smoke.cjs'], scratch).trimEnd());

// A user's strict project against the packed declarations (scripts/strict-app/README.md).
for (const file of readdirSync(join(root, 'scripts', 'strict-app'))) copyFileSync(join(root, 'scripts', 'strict-app', file), join(scratch, file));
for (const config of ['tsconfig.no-dom.json', 'tsconfig.dom.json']) {
  run('npx', ['tsc', '-p', config], scratch);
  console.log(`strict project (${config}, skipLibCheck: false): type-checks`);
}
console.log('package check passed');
