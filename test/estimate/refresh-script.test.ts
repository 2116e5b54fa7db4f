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

function tree(name: string, models: unknown, overrides: { llm?: string; utils?: string } = {}): string {
  const root = join(scratch, name);
  mkdirSync(join(root, 'ecologits', 'impacts'), { recursive: true });
  mkdirSync(join(root, 'ecologits', 'tracers'), { recursive: true });
  mkdirSync(join(root, 'ecologits', 'data'), { recursive: true });
  writeFileSync(join(root, 'pyproject.toml'), '[project]\nname = "ecologits"\nversion = "9.9.9"\n');
  writeFileSync(join(root, 'LICENSE'), 'Mozilla Public License Version 2.0\n');
  writeFileSync(join(root, 'ecologits', 'impacts', 'llm.py'), overrides.llm ?? LLM_PY);
  writeFileSync(join(root, 'ecologits', 'tracers', 'utils.py'), overrides.utils ?? UTILS_PY);
  writeFileSync(join(root, 'ecologits', 'data', 'models.json'), JSON.stringify(models));
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
    expect(stdout).toMatch(/2 models, 1 aliases, 2 providers from EcoLogits 9\.9\.9 \(github\.com\/mlco2\/ecologits, commit abc123\)/);
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
    expect(readFileSync(join(out, 'ecologits.ts'), 'utf8')).toMatch(/Mozilla Public License, v\. 2\.0/);
  });

  const REFUSALS: Array<[string, unknown, { llm?: string; utils?: string }, RegExp]> = [
    ['an unknown warning code', { models: [{ ...MODELS.models[0], warnings: ['model-is-haunted'] }] }, {}, /unknown warning code model-is-haunted/],
    ['an alias to no model', { aliases: [{ provider: 'openai', name: 'x', alias: 'nope' }], models: MODELS.models }, {}, /alias x points to an unknown model nope/],
    ['a provider without a config', { models: [{ ...MODELS.models[0], provider: 'elsewhere' }] }, {}, /provider without a config: elsewhere/],
    ['a constant that is not a number', MODELS, { llm: LLM_PY.replace('BATCH_SIZE = 32', 'BATCH_SIZE = compute()') }, /BATCH_SIZE = compute\(\) is not a number/],
    ['a missing constant', MODELS, { llm: LLM_PY.replace('SERVER_POWER = 1.5  # kW\n', '') }, /no SERVER_POWER in llm\.py/],
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
