/**
 * The README and the pages of docs/ are the first thing a user copies from: every TypeScript
 * snippet in them is compiled with `strict` against the current API (with the values a reader
 * already has declared in prelude.d.ts), and their links must work where each is read. The README
 * is rendered on the npm registry, where relative links break, and on whatever forge hosts the
 * repository: it links to docs/ through jsDelivr, pinned to the package's version like its
 * screenshot, and every page it links to is packed. The docs pages are rendered on forges and
 * served from the package, where the same relative layout holds: they link to each other (and
 * back to the README) relatively, and never to a file the package does not ship.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ECOLOGITS_ALIASES, ECOLOGITS_RELEASE } from '../../src/estimate/data/ecologits';
import { ecologitsProviderOf, estimateProviders } from '../../src/estimate/index';
import { ELECTRICITY_MAPS_TOKEN_VARIABLE } from '../../src/grid/electricity-maps';
import { ZONE_HINT } from '../../src/grid/iso-3166';
import { runProcess } from '../setup/processes';

const root = resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(join(root, file), 'utf8');
const pkg = JSON.parse(read('package.json')) as { name: string; version: string };
const docs = readdirSync(join(root, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .sort()
  .map((f) => `docs/${f}`);
const pages = ['README.md', ...docs];
const text = new Map(pages.map((page) => [page, read(page)]));
const pinned = `https://cdn.jsdelivr.net/npm/${pkg.name}@${pkg.version}/`;

const snippets = pages.flatMap((page) => [...text.get(page)!.matchAll(/```ts\n([\s\S]*?)```/g)].map((m, i) => ({ page, index: i + 1, code: m[1]! })));

/** Markdown without its fenced code blocks, where `#` lines and `](` are code, not headings or links. */
const prose = (markdown: string) => markdown.replace(/^```[\s\S]*?^```/gm, '');

/**
 * The anchors of a page's headings, as GitHub makes them (lower case, punctuation dropped, spaces to
 * hyphens, `-1`… for repeats). An anchor with `--` is one GitLab and Gitea spell differently.
 */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const m of prose(markdown).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = m[1]!.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

const linksOf = (markdown: string) => [...prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);

/** `page#anchor` → the problem with it, or `undefined` when both exist. */
function missing(page: string, anchor: string | undefined): string | undefined {
  const target = text.get(page);
  if (target === undefined) return `${page} does not exist`;
  if (anchor === undefined) return undefined;
  if (anchor.includes('--')) return `#${anchor} is spelt differently on GitLab and Gitea: reword the heading`;
  return anchorsOf(target).has(anchor) ? undefined : `${page} has no heading #${anchor}`;
}

describe('README and docs/', () => {
  it('have TypeScript snippets to check, on every page that shows code', () => {
    expect(snippets.filter((s) => s.page === 'README.md').length).toBeGreaterThanOrEqual(5);
    expect(snippets.length).toBeGreaterThanOrEqual(20);
    expect(docs).toEqual(expect.arrayContaining(['docs/proxy.md', 'docs/producing.md', 'docs/troubleshooting.md', 'docs/estimates.md']));
  });

  it('every TypeScript snippet compiles under strict against the current API', async () => {
    const dir = join(root, '.tmp', 'readme-snippets');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const files = snippets.map(({ page, index, code }) => {
      // Named after its page, so that tsc's output says which snippet broke.
      const file = `${page.replace(/\.md$/, '').replace(/\W/g, '-')}-${String(index).padStart(2, '0')}.ts`;
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
    // On failure, show which snippet broke and how.
    expect(result).toBe('');
  }, 120_000);

  it('the README has no relative links, which break on the npm registry; its links into docs/ are pinned to this version and land', () => {
    const problems: string[] = [];
    const readme = text.get('README.md')!;
    for (const link of linksOf(readme)) {
      if (link.startsWith('#')) {
        const problem = missing('README.md', link.slice(1));
        if (problem) problems.push(`${link}: ${problem}`);
      } else if (!/^(https?:\/\/|mailto:)/.test(link)) {
        problems.push(`${link}: relative`);
      } else if (link.startsWith(`https://cdn.jsdelivr.net/npm/${pkg.name}@`)) {
        if (!link.startsWith(pinned)) problems.push(`${link}: not pinned to ${pkg.version} (npm run version-packages syncs it)`);
        const [file, anchor] = link.slice(pinned.length).split('#');
        if (file!.endsWith('.md')) {
          const problem = missing(file!, anchor);
          if (problem) problems.push(`${link}: ${problem}`);
        }
      }
    }
    expect(problems).toEqual([]);
    // Every page of docs/ is reachable from the README.
    expect(docs.filter((page) => !readme.includes(`${pinned}${page}`))).toEqual([]);
  });

  it('docs/ pages link to each other and to the README relatively, to pages and headings that exist, and to nothing the package does not ship', () => {
    const problems: string[] = [];
    for (const page of docs) {
      for (const link of linksOf(text.get(page)!)) {
        if (/^(https?:\/\/|mailto:)/.test(link)) continue;
        const [file, anchor] = link.split('#');
        const target = file === '' ? page : file === '../README.md' ? 'README.md' : /^[\w-]+\.md$/.test(file!) ? `docs/${file}` : undefined;
        const problem = target === undefined ? 'not a page of docs/ or the README: the package does not ship it' : missing(target, anchor);
        if (problem) problems.push(`${page}: ${link}: ${problem}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every page the README links to is in the packed tarball', async () => {
    // --ignore-scripts: `prepare` would build dist/ again.
    const { code, stdout } = await runProcess('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root });
    expect(code).toBe(0);
    const [packed] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
    const paths = packed!.files.map((f) => f.path);
    const linked = [...text.get('README.md')!.matchAll(new RegExp(`${pinned.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}([^)#\\s]+)`, 'g'))].map((m) => m[1]!);
    expect(linked.length).toBeGreaterThan(docs.length);
    expect(linked.filter((file) => !paths.includes(file))).toEqual([]);
  }, 60_000);
});

describe('docs/troubleshooting.md', () => {
  const page = text.get('docs/troubleshooting.md')!;
  const quoted = [...page.matchAll(/^\| `([^`]+)`/gm)].map((m) => m[1]!);
  const files = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? (entry.name === 'data' ? [] : files(`${dir}/${entry.name}`)) : entry.name.endsWith('.ts') ? [`${dir}/${entry.name}`] : [],
    );
  // Every source file: adapters, core, estimate, grid, the meter and its sources, the proxy, the CLI.
  // Constants a message interpolates are written out, as the user reads them.
  const sources = files('src')
    .map(read)
    .join('\n')
    .replaceAll('${ECOLOGITS_RELEASE.version}', ECOLOGITS_RELEASE.version)
    .replaceAll('${ELECTRICITY_MAPS_TOKEN_VARIABLE}', ELECTRICITY_MAPS_TOKEN_VARIABLE)
    .replaceAll('${ZONE_HINT}', ZONE_HINT);

  it('quotes every warning in the words the code uses', () => {
    expect(quoted.length).toBeGreaterThanOrEqual(40);
    const notPrinted: string[] = [];
    for (const message of quoted) {
      // `M` (the model), `N` (a count) and `…` are filled in at run time, and so is a callback's
      // name: `${name} threw: …`. Every fixed run of words between them must be words the code
      // really prints (quotes around a placeholder come from JSON.stringify).
      const fragments = message
        .replace(/^[\w.]+ (?=threw:)/, '')
        .split(/\bM\b|…|\bN responses\b/)
        .map((fragment) => fragment.trim().replace(/^[\s"'():;,.]+|[\s"'():;,.]+$/g, ''))
        .filter((fragment) => fragment.length >= 4);
      expect(fragments.length, message).toBeGreaterThan(0);
      for (const fragment of fragments) if (!sources.includes(fragment)) notPrinted.push(`${message}: "${fragment}"`);
    }
    expect(notPrinted).toEqual([]);
  });

  it('explains every warning the proxy, the meter, its sources and the live grid print', () => {
    // Each `warn(…)` of those files whose message is written out there: its longest fixed run of
    // words must be on the page.
    const warners = [...files('src/server'), 'src/grid/electricity-maps.ts'];
    const unexplained: string[] = [];
    let found = 0;
    for (const file of warners) {
      const source = read(file);
      for (const call of source.matchAll(/\bwarn\(/g)) {
        const message = lastArgument(source, call.index + call[0].length);
        if (message === undefined) continue;
        found++;
        const longest = message.sort((a, b) => b.length - a.length)[0]!.trim();
        if (!page.includes(longest)) unexplained.push(`${file}: "${longest}"`);
      }
    }
    expect(found).toBeGreaterThanOrEqual(12);
    expect(unexplained).toEqual([]);
  });
});

/**
 * The fixed text of the last argument of a call whose arguments start at `from`, when it is a string
 * or template literal: its runs outside `${…}`. `undefined` for anything else (a variable).
 */
function lastArgument(source: string, from: number): string[] | undefined {
  let depth = 0;
  let start = from;
  let i = from;
  for (; i < source.length; i++) {
    const c = source[i]!;
    if (c === '"' || c === "'" || c === '`') {
      i = skipString(source, i);
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) break;
      depth--;
    } else if (c === ',' && depth === 0) start = i + 1;
  }
  const argument = source.slice(start, i).trim();
  if (/^'[^']*'$|^"[^"]*"$/.test(argument)) return [argument.slice(1, -1)];
  if (!argument.startsWith('`') || skipString(argument, 0) !== argument.length - 1) return undefined;
  // The template's own text: what lies outside its `${…}`.
  const runs: string[] = [];
  let run = '';
  for (let j = 1; j < argument.length - 1; j++) {
    if (argument[j] === '$' && argument[j + 1] === '{') {
      runs.push(run);
      run = '';
      j = skipInterpolation(argument, j + 2);
    } else {
      run += argument[j];
    }
  }
  runs.push(run);
  return runs;
}

/** The index of the quote that closes the string or template opening at `at`. */
function skipString(source: string, at: number): number {
  const quote = source[at];
  for (let i = at + 1; i < source.length; i++) {
    if (source[i] === '\\') i++;
    else if (quote === '`' && source[i] === '$' && source[i + 1] === '{') i = skipInterpolation(source, i + 2);
    else if (source[i] === quote) return i;
  }
  return source.length;
}

/** The index of the `}` that closes an interpolation whose body starts at `at`. */
function skipInterpolation(source: string, at: number): number {
  let depth = 0;
  for (let i = at; i < source.length; i++) {
    const c = source[i]!;
    if (c === '"' || c === "'" || c === '`') i = skipString(source, i);
    else if (c === '{') depth++;
    else if (c === '}') {
      if (depth === 0) return i;
      depth--;
    }
  }
  return source.length;
}

describe('docs/estimates.md', () => {
  it("lists the estimate data's providers as the data has them, and the SDK names that reach each", () => {
    const rows = [...text.get('docs/estimates.md')!.matchAll(/^\| `(\w+)` \| (.+?) \| (\d+)(?: \(\+(\d+)\))? \| (\w+) \| ([\d.–]+) \|$/gm)];
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
