/**
 * Tests that need a program a fresh machine lacks (a browser, nginx, Prometheus): on a developer's
 * machine they do not run, and say so — which test, what is missing, the command that installs it —
 * at the end of `npm test`; in CI (`CARBON_TRACE_REQUIRE_SYSTEM_TOOLS=1`, set by .ci/run) a missing
 * program is a failure, never a skip.
 */
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { describe } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
/** Where skipped tests leave their note for the global teardown to print. */
export const NOT_RUN_DIR = join(root, '.tmp', 'not-run');

/**
 * The first executable among `candidates`, or `undefined`.
 *
 * @example
 * ```ts
 * findExecutable(['/usr/bin/chromium']);
 * ```
 */
export function findExecutable(candidates: readonly string[]): string | undefined {
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not this one.
    }
  }
  return undefined;
}

export type SystemTool = {
  /** What it is, for the message: `'Chromium'`. */
  name: string;
  /** Where it may be, first found wins. */
  candidates: readonly string[];
  /** The one command that installs it. */
  install: string;
};

/**
 * The path of a tool a test file needs, or `undefined` with a note for the end of the run — or,
 * in CI, an error.
 *
 * @example
 * ```ts
 * const chromium = requireSystemTool(import.meta.filename, { name: 'Chromium', candidates: ['/usr/bin/chromium'], install: 'apt-get install -y chromium' });
 * describe.skipIf(!chromium)('the dashboard', () => { … });
 * ```
 */
export function requireSystemTool(testFile: string, tool: SystemTool): string | undefined {
  const found = findExecutable(tool.candidates);
  if (found) return found;
  const file = relative(root, testFile);
  const message = `${file} did not run: it needs ${tool.name} (${tool.candidates.join(' or ')}), which this machine lacks. Install it with: ${tool.install}`;
  if (process.env.CARBON_TRACE_REQUIRE_SYSTEM_TOOLS === '1') throw new Error(`${message} (CARBON_TRACE_REQUIRE_SYSTEM_TOOLS=1: required here)`);
  mkdirSync(NOT_RUN_DIR, { recursive: true });
  writeFileSync(join(NOT_RUN_DIR, `${basename(file)}.txt`), `${message}\n`);
  return undefined;
}

/**
 * Leaves a note for the end of the run that a test did not run here, and why (a capability this
 * machine lacks that is not a program to install: user namespaces, a Linux-only tool).
 *
 * @example
 * ```ts
 * if (!namespaces) noteNotRun(import.meta.filename, 'namespaces', 'unprivileged user namespaces are not allowed here');
 * ```
 */
export function noteNotRun(testFile: string, what: string, why: string): void {
  const file = relative(root, testFile);
  mkdirSync(NOT_RUN_DIR, { recursive: true });
  writeFileSync(join(NOT_RUN_DIR, `${basename(file)}-${what}.txt`), `${file}: a test did not run: ${why}\n`);
}

/**
 * `describe`, or, when the tool is missing, a skipped `describe` whose title says why.
 *
 * @example
 * ```ts
 * describeWith(chromium, 'the dashboard in Chromium', () => { … });
 * ```
 */
export function describeWith(tool: string | undefined, title: string, body: () => void): void {
  if (tool) describe(title, body);
  else describe.skip(`${title} (not run: a program it needs is missing; see the note at the end)`, body);
}
