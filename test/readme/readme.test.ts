/**
 * The README is the first thing a user copies from: every TypeScript snippet in it is compiled
 * with `strict` against the current API (with the values a reader already has declared in
 * prelude.d.ts), and its links must work on the npm registry, where relative links break.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ECOLOGITS_ALIASES } from '../../src/estimate/data/ecologits';
import { ecologitsProviderOf, estimateProviders } from '../../src/estimate/index';

const root = resolve(import.meta.dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const snippets = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('README', () => {
  it('has TypeScript snippets to check', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(8);
  });

  it('every TypeScript snippet compiles under strict against the current API', async () => {
    const dir = join(root, '.tmp', 'readme-snippets');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const files = snippets.map((code, i) => {
      const file = `snippet-${String(i + 1).padStart(2, '0')}.ts`;
      // A module each, so that one snippet's names never clash with another's.
      writeFileSync(join(dir, file), `${code}\nexport {};\n`);
      return file;
    });
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../tsconfig.json',
        compilerOptions: { strict: true, noUnusedLocals: false, noEmit: true },
        include: ['../../test/readme/prelude.d.ts', '../../src/grid/tgwf-co2.d.ts', ...files],
      }),
    );
    const tsc = join(root, 'node_modules', '.bin', 'tsc');
    const result = await promisify(execFile)(tsc, ['-p', join(dir, 'tsconfig.json')], { cwd: root }).then(
      () => '',
      (error: { stdout: string }) => error.stdout,
    );
    // On failure, show which README snippet broke and how.
    expect(result).toBe('');
  }, 120_000);

  it('has no relative links, which break on the npm registry', () => {
    const relative = [...readme.matchAll(/\]\((?!https?:\/\/|#|mailto:)([^)]+)\)/g)].map((m) => m[1]);
    expect(relative).toEqual([]);
  });

  it('explains every warning a user can see, in Troubleshooting, in the words the code uses', () => {
    const section = readme.slice(readme.indexOf('## Troubleshooting'), readme.indexOf('## FAQ'));
    const sources = [
      'src/core/report.ts',
      'src/langchain/carbon-trace-callback-handler.ts',
      'src/ai-sdk/carbon-trace-middleware.ts',
      'src/grid/index.ts',
      'src/core/grid-intensity.ts',
      'src/core/call-estimator.ts',
      'src/estimate/estimate-call-impact.ts',
    ]
      .map((file) => readFileSync(join(root, file), 'utf8'))
      .join('\n');
    const quoted = [...section.matchAll(/^\| `([^`]+)`/gm)].map((m) => m[1]!);
    expect(quoted.length).toBeGreaterThanOrEqual(10);
    for (const message of quoted) {
      // The fixed words before the first placeholder must be words the code really prints.
      // A callback's name is filled in at run time: `${name} threw: …`.
      const fixed = message.replace(/^[\w.]+ (?=threw:)/, '').split(/M\b|…|N responses/)[0]!.trim();
      expect(sources, message).toContain(fixed);
    }
  });

  it("lists the estimate data's providers as the data has them, and the SDK names that reach each", () => {
    const rows = [...readme.matchAll(/^\| `(\w+)` \| (.+?) \| (\d+)(?: \(\+(\d+)\))? \| (\w+) \| ([\d.–]+) \|$/gm)];
    const table = rows.map((m) => ({ provider: m[1], models: Number(m[3]), aliases: Number(m[4] ?? 0), zone: m[5], pue: m[6] }));
    const data = estimateProviders().map((p) => ({
      provider: p.provider,
      models: p.models,
      aliases: Object.keys(ECOLOGITS_ALIASES[p.provider] ?? {}).length,
      zone: p.zone,
      pue: typeof p.pue === 'number' ? String(p.pue) : `${p.pue.min}–${p.pue.max}`,
    }));
    expect(table.sort((a, b) => a.provider!.localeCompare(b.provider!))).toEqual(data.sort((a, b) => a.provider.localeCompare(b.provider)));
    // Every SDK name the table gives maps to its row's provider.
    for (const m of rows) {
      for (const name of [...m[2]!.matchAll(/`([\w.*-]+)`/g)].map((n) => n[1]!.replace('.*', '.chat'))) expect(ecologitsProviderOf(name), name).toBe(m[1]);
    }
  });
});
