/**
 * The README's "Which calls carry the number" table says what the suite carries end to end, and
 * nothing else: its rows are TESTED_WIRES, and each row's test file runs that client on that wire.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TESTED_WIRES } from './tested-wires';

const root = resolve(import.meta.dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const HEADER = '| client | wire | the number is at | tested in |';

function readmeRows(): string[][] {
  const start = readme.indexOf(HEADER);
  expect(start, 'the README has the wire table').toBeGreaterThan(0);
  return readme
    .slice(start)
    .split('\n\n')[0]!
    .split('\n')
    .slice(2)
    .map((line) => line.replace(/^\| | \|$/g, '').split(' | '));
}

describe('README wire table', () => {
  it('lists exactly the client × wire pairs the suite carries a number over', () => {
    expect(readmeRows()).toEqual(TESTED_WIRES.map((w) => [w.client, w.wire, w.where, `\`${w.testFile}\``]));
  });

  it("each row's test file runs that client on that wire", () => {
    for (const row of TESTED_WIRES) {
      expect(existsSync(join(root, row.testFile)), row.testFile).toBe(true);
      const source = readFileSync(join(root, row.testFile), 'utf8');
      for (const proof of row.proof) expect(source, `${row.testFile} for ${row.client} on ${row.wire}`).toContain(proof);
    }
  });

  it('every wire module of the proxy has a row', async () => {
    const { WIRES } = await import('../../src/server/wires/index');
    const names = WIRES.map((w: { name: string }) => w.name).sort();
    const covered: Record<string, RegExp> = {
      chat: /chat completions/,
      responses: /Responses API/,
      embeddings: /embeddings|rerank/,
      ollama: /Ollama/,
      tgi: /TGI/,
      llamacpp: /llama\.cpp/,
      anthropic: /Anthropic Messages/,
    };
    expect(names).toEqual(Object.keys(covered).sort());
    for (const name of names) expect(TESTED_WIRES.some((w) => covered[name]!.test(w.wire)), name).toBe(true);
  });
});
