/**
 * The README's compatibility table says what the suite runs, and nothing else: its rows are
 * TESTED_CLIENTS, with the versions installed under the specifiers the tests import, and each
 * row's test file really runs that client.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAJORS } from '../ai-sdk/majors';
import { AI_MAJOR_INSTALLED_ON, TESTED_CLIENTS, type TestedClient } from './tested-clients';

const root = resolve(import.meta.dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const read = (file: string) => readFileSync(join(root, file), 'utf8');

/** name, version and engines.node of what a specifier (an npm alias too) is installed as. */
function installed(specifier: string): { name: string; version: string; node?: string } {
  const manifest = JSON.parse(read(join('node_modules', specifier, 'package.json'))) as { name: string; version: string; engines?: { node?: string } };
  return { name: manifest.name, version: manifest.version, ...(manifest.engines?.node ? { node: manifest.engines.node } : {}) };
}

/** How the table shows a version: LangChain's minors differ by Node, the others' majors. */
function shown(specifier: string): string {
  const { name, version } = installed(specifier);
  const [major, minor] = version.split('.');
  return name.startsWith('@langchain/') ? `${major}.${minor}` : `${major}.x`;
}

function expectedRow(entry: TestedClient): string[] {
  return [
    entry.client,
    shown(entry.package),
    entry.with ? `${entry.with.name} ${shown(entry.with.package)}` : '—',
    entry.installedOn,
    `\`${entry.testFile}\``,
  ];
}

/** The table's rows, each cut to its cells; the "tested in" cell to its file (notes may follow). */
function readmeRows(): string[][] {
  const section = readme.slice(readme.indexOf('## Compatibility'), readme.indexOf('\n## ', readme.indexOf('## Compatibility') + 1));
  const header = '| client | version | with | `npm install` gives it on | tested in |';
  expect(section).toContain(header);
  const table = section.slice(section.indexOf(header)).split('\n\n')[0]!.split('\n').slice(2);
  return table.map((line) => {
    const cells = line.replace(/^\| | \|$/g, '').split(' | ');
    cells[4] = cells[4]!.match(/^`[^`]+`/)?.[0] ?? cells[4]!;
    return cells;
  });
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('README compatibility table', () => {
  it('lists exactly the clients the suite runs, at the versions installed', () => {
    expect(readmeRows()).toEqual(TESTED_CLIENTS.map(expectedRow));
  });

  it("each row's test file runs that client", () => {
    for (const entry of TESTED_CLIENTS) {
      const source = read(entry.testFile);
      if (entry.proof !== undefined) expect(source, entry.testFile).toContain(entry.proof);
      else expect(source, `${entry.testFile} imports ${entry.package}`).toMatch(new RegExp(`from '${escape(entry.package)}'|import\\('${escape(entry.package)}'\\)`));
    }
  });

  it('MAJORS imports the packages it names, and every major has a row', () => {
    const majors = read('test/ai-sdk/majors.ts');
    for (const major of MAJORS) {
      expect(majors).toContain(`from '${major.packages.ai}'`);
      expect(majors).toContain(`from '${major.packages.provider}'`);
      expect(AI_MAJOR_INSTALLED_ON[major.label], major.label).toBeDefined();
      expect(installed(major.packages.ai).version.split('.')[0]).toBe(major.label.replace('ai@', ''));
    }
  });

  it("'Node 20' rows install on Node 20; 'Node 22+' rows are the ones that declare Node ≥ 22", () => {
    const minimumNode = (specifier: string) => Number(installed(specifier).node?.match(/^>=\s*(\d+)/)?.[1] ?? 0);
    for (const entry of TESTED_CLIENTS) {
      if (entry.installedOn.includes('Node 20')) expect(minimumNode(entry.package), entry.package).toBeLessThanOrEqual(20);
      if (entry.installedOn === 'Node 22+') expect(minimumNode(entry.package), entry.package).toBeGreaterThanOrEqual(22);
    }
  });
});
