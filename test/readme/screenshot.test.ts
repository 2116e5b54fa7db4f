/**
 * The README's screenshot must render on npm and on whatever forge hosts the repository. npm
 * rewrites a relative image only to raw.githubusercontent.com of the GitHub repository named in
 * package.json's `repository` — which this package does not claim — so the image is the
 * package's own file, served by jsDelivr from the published tarball and pinned to the version
 * whose README shows it. This test fails when a version bump leaves the pin behind (run
 * `npm run version-packages`, which syncs it) or when the file stops being packed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runProcess } from '../setup/processes';

const root = resolve(import.meta.dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string; files: string[] };
const images = (text: string) => [...text.matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g)].map((m) => m[1]!);

describe('README screenshot', () => {
  it("is the published package's own docs/dashboard.png, pinned to package.json's version", () => {
    expect(images(readme)).toEqual([`https://cdn.jsdelivr.net/npm/${pkg.name}@${pkg.version}/docs/dashboard.png`]);
  });

  it('is in the packed tarball', async () => {
    // --ignore-scripts: `prepare` would build dist/ again.
    const { code, stdout } = await runProcess('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root });
    expect(code).toBe(0);
    const [packed] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
    expect(packed!.files.map((f) => f.path)).toContain('docs/dashboard.png');
  }, 60_000);

  it('scripts/sync-readme-version.mjs moves the pin to the current version, and touches nothing else', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-readme-'));
    try {
      const copy = join(dir, 'README.md');
      const stale = readme.replaceAll(`${pkg.name}@${pkg.version}/`, `${pkg.name}@0.0.1-old/`);
      expect(stale).not.toBe(readme);
      writeFileSync(copy, stale);
      expect((await runProcess(process.execPath, [join(root, 'scripts', 'sync-readme-version.mjs'), copy], { cwd: root })).code).toBe(0);
      expect(readFileSync(copy, 'utf8')).toBe(readme);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
