/**
 * scripts/refresh-ecologits.mjs against a small EcoLogits-shaped source tree built here (no
 * network): what it reads, what it writes, and what it refuses.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const script = resolve(import.meta.dirname, '../../scripts/refresh-ecologits.mjs');
const scratch = mkdtempSync(join(tmpdir(), 'refresh-ecologits-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const LLM_PY = `import math
MODEL_QUANTIZATION_BITS = 16

GPU_ENERGY_ALPHA = 2e-06
GPU_ENERGY_BETA = -0.01
GPU_ENERGY_GAMMA = 4e-05
LATENCY_ALPHA = 0.0007
LATENCY_BETA = 0.0003
LATENCY_GAMMA = 0.02
GPU_MEMORY = 80  # GB
GPU_EMBODIED_IMPACT_GWP = 150
SERVER_GPUS = 8
SERVER_POWER = 1.5  # kW
SERVER_EMBODIED_IMPACT_GWP = 6000
HARDWARE_LIFESPAN = 4 * 365 * 24 * 60 * 60
BATCH_SIZE = 32
`;

const UTILS_PY = `PROVIDER_CONFIG_MAP = {
    "openai": _ProviderConfig(
        datacenter_location="USA",
        datacenter_pue=1.20,
        datacenter_wue=0.569,
    ),
    "newcloud": _ProviderConfig(
        datacenter_location="FRA",
        datacenter_pue=RangeValue(min=1.1, max=1.3),
        datacenter_wue=0.5,
    )
}
`;

// electricity_mixes.csv's shape (name,adpe,pe,gwp,wue); only gwp is carried.
const MIXES_CSV = 'name,adpe,pe,gwp,wue\nFRA,0.00000004858,9.3135,0.04418,3.6737\nWOR,0.00000001349,2.5871,0.47301,3.908\n';

type Overrides = { llm?: string; utils?: string; mixes?: string };

function tree(name: string, models: unknown, overrides: Overrides = {}): string {
  const root = join(scratch, name);
  mkdirSync(join(root, 'ecologits', 'impacts'), { recursive: true });
  mkdirSync(join(root, 'ecologits', 'tracers'), { recursive: true });
  mkdirSync(join(root, 'ecologits', 'data'), { recursive: true });
  writeFileSync(join(root, 'pyproject.toml'), '[project]\nname = "ecologits"\nversion = "9.9.9"\n');
  writeFileSync(join(root, 'LICENSE'), 'Mozilla Public License Version 2.0\n');
  writeFileSync(join(root, 'ecologits', 'impacts', 'llm.py'), overrides.llm ?? LLM_PY);
  writeFileSync(join(root, 'ecologits', 'tracers', 'utils.py'), overrides.utils ?? UTILS_PY);
  writeFileSync(join(root, 'ecologits', 'data', 'models.json'), JSON.stringify(models));
  writeFileSync(join(root, 'ecologits', 'data', 'electricity_mixes.csv'), overrides.mixes ?? MIXES_CSV);
  return root;
}

const MODELS = {
  aliases: [{ type: 'alias', provider: 'openai', name: 'small', alias: 'small-2026' }],
  models: [
    { type: 'model', provider: 'openai', name: 'small-2026', architecture: { type: 'dense', parameters: { min: 5, max: 15 } }, warnings: ['model-arch-not-released'], sources: [] },
    { type: 'model', provider: 'newcloud', name: 'moe-1', architecture: { type: 'moe', parameters: { total: 100, active: 20 } }, warnings: null, sources: [] },
  ],
};

describe('scripts/refresh-ecologits.mjs', () => {
  it('writes the models, aliases, provider configs, constants and licence of the release it is given', async () => {
    const out = join(scratch, 'out-ok');
    mkdirSync(out);
    const { stdout } = await run(process.execPath, [script, tree('ok', MODELS), 'abc123', '--out', out]);
    expect(stdout).toMatch(/2 models, 1 aliases, 2 providers, 2 electricity mixes from EcoLogits 9\.9\.9 \(github\.com\/mlco2\/ecologits, commit abc123\)/);
    // llm.py is not 0.9.3's: the maintainer is told to compare the formulas.
    expect(stdout).toMatch(/compare the formulas/);
    expect(readFileSync(join(out, 'ECOLOGITS-LICENSE'), 'utf8')).toContain('Mozilla Public License');

    const data = await import(join(out, 'ecologits.ts'));
    expect(data.ECOLOGITS_RELEASE).toEqual({ version: '9.9.9', repository: 'mlco2/ecologits', commit: 'abc123' });
    expect(data.ECOLOGITS_LLM_CONSTANTS).toMatchObject({ BATCH_SIZE: 32, SERVER_POWER: 1.5, HARDWARE_LIFESPAN: 4 * 365 * 24 * 3600, GPU_ENERGY_ALPHA: 2e-6 });
    expect(data.ECOLOGITS_PROVIDERS).toEqual({
      openai: { datacenterLocation: 'USA', datacenterPue: 1.2 },
      newcloud: { datacenterLocation: 'FRA', datacenterPue: { min: 1.1, max: 1.3 } },
    });
    expect(data.ECOLOGITS_MODELS).toEqual({ openai: [['small-2026', [5, 15], 1]], newcloud: [['moe-1', { total: 100, active: 20 }]] });
    expect(data.ECOLOGITS_ALIASES).toEqual({ openai: { small: 'small-2026' } });
    // kgCO2eq/kWh exactly as the file writes them.
    expect(data.ECOLOGITS_ELECTRICITY_MIXES_GWP).toEqual({ FRA: 0.04418, WOR: 0.47301 });
    expect(readFileSync(join(out, 'ecologits.ts'), 'utf8')).toMatch(/Mozilla Public License, v\. 2\.0/);
  });

  const mixes = (row: string) => ({ mixes: `name,adpe,pe,gwp,wue\n${row}\n` });
  const REFUSALS: Array<[string, unknown, Overrides, RegExp]> = [
    ['an unknown warning code', { models: [{ ...MODELS.models[0], warnings: ['model-is-haunted'] }] }, {}, /unknown warning code model-is-haunted/],
    ['an alias to no model', { aliases: [{ provider: 'openai', name: 'x', alias: 'nope' }], models: MODELS.models }, {}, /alias x points to an unknown model nope/],
    ['a provider without a config', { models: [{ ...MODELS.models[0], provider: 'elsewhere' }] }, {}, /provider without a config: elsewhere/],
    ['a constant that is not a number', MODELS, { llm: LLM_PY.replace('BATCH_SIZE = 32', 'BATCH_SIZE = compute()') }, /BATCH_SIZE = compute\(\) is not a number/],
    ['a missing constant', MODELS, { llm: LLM_PY.replace('SERVER_POWER = 1.5  # kW\n', '') }, /no SERVER_POWER in llm\.py/],
    ['a mix without a gwp column', MODELS, { mixes: 'name,adpe,pe,wue\nFRA,0,9.3,3.6\n' }, /no name or gwp column/],
    ['a mix whose gwp is not a number', MODELS, mixes('FRA,0,9.3,lots,3.6'), /gwp "lots" of FRA is not a number/],
    ['a negative mix', MODELS, mixes('FRA,0,9.3,-0.1,3.6'), /gwp "-0\.1" of FRA is not a number ≥ 0/],
    ['an empty gwp cell', MODELS, mixes('FRA,0,9.3,,3.6'), /gwp "" of FRA/],
    ['a mix zone that is not a three-letter code', MODELS, mixes('__proto__,0,9.3,0.1,3.6'), /zone "__proto__" is not a three-letter code/],
    ['a zone twice', MODELS, mixes('FRA,0,9.3,0.1,3.6\nFRA,0,9.3,0.2,3.6'), /zone FRA appears twice/],
    ['no mixes at all', MODELS, { mixes: 'name,adpe,pe,gwp,wue\n' }, /electricity_mixes\.csv has no rows/],
  ];

  it.each(REFUSALS)('refuses %s, with a one-line reason and exit code 1', async (name, models, overrides, reason) => {
    const out = join(scratch, `out-${name.replace(/\W+/g, '-')}`);
    mkdirSync(out);
    const failure = await run(process.execPath, [script, tree(name.replace(/\W+/g, '-'), models, overrides), '--out', out]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toMatch(reason);
  });
});
