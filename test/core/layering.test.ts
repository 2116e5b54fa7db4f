/**
 * The core is what every entry builds on, on every runtime: it imports nothing above it (the
 * adapters hand it the estimate loader), nothing Node-specific and no framework.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const coreDir = resolve(import.meta.dirname, '../../src/core');

/** Module specifiers of static and dynamic imports and re-exports, comments left out. */
function specifiersOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  return [...code.matchAll(/\bfrom\s+'([^']+)'|\bimport\s*\(\s*'([^']+)'\s*\)|^\s*import\s+'([^']+)'/gm)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

describe('src/core', () => {
  const files = readdirSync(coreDir).filter((f) => f.endsWith('.ts'));

  it('finds the imports it checks', () => {
    expect(specifiersOf("import { a } from './a';\nexport { b } from '../b';\nconst m = import('../estimate/x');")).toEqual(['./a', '../b', '../estimate/x']);
    expect(files.length).toBeGreaterThan(10);
  });

  it.each(files)('%s imports only the core itself (and zod for the wire schema)', (file) => {
    const outside = specifiersOf(readFileSync(join(coreDir, file), 'utf8')).filter((s) => !s.startsWith('./') && s !== 'zod/v4');
    expect(outside).toEqual([]);
  });
});
