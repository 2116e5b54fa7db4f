import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runProcess } from '../setup/processes';

const root = resolve(import.meta.dirname, '../..');

// Each example starts the toy model behind a carbon-trace proxy itself, as a user running it would.
const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.ts'));

// What each one must print: the number it exists to show.
const expectedOutput: Record<string, RegExp> = {
  'ai-sdk-generate.ts': /\d\S* [µm]?Wh, \d\S* [µm]?g CO2eq \(codecarbon_estimated\)/,
  'ai-sdk-stream.ts': /onFinish: \d\S* [µm]?g CO2eq[\s\S]*Wh, /,
  'ai-sdk-tool-loop.ts': /2 steps \(2 traced\): \d\S* [µm]?Wh, \d\S* [µm]?g CO2eq/,
  'langchain-model.ts': /\[onMetrics\] toy-model: \d\S* [µm]?g CO2eq[\s\S]*response_metadata\.codecarbon: \d\S* [µm]?Wh[\s\S]*all calls so far: 2\/2 traced, \d\S* [µm]?Wh/,
  'langchain-chain.ts': /chain: 1 model call\(s\), \d\S* [µm]?Wh, \d\S* [µm]?g CO2eq/,
  'langchain-graph.ts': /graph: 2 model calls, \d\S* [µm]?g CO2eq in total/,
  'openai-sdk.ts': /\d\S* [µm]?Wh, \d\S* [µm]?g CO2eq \(codecarbon_estimated\)/,
  'openai-sdk-stream.ts': /\n\d\S* [µm]?Wh, \d\S* [µm]?g CO2eq \(codecarbon_estimated\)/,
  'tracker-report.ts': /^timestamp,project_name,run_id[\s\S]*BoAmps report: 2 requests, \d\S* [µm]?Wh[\s\S]*in Sweden: \d\S* [µnm]?g CO2eq/m,
  'demo.ts':
    /AI SDK {3}generateText[\s\S]*AI SDK {3}API model, no trace +~\S+ [µm]?Wh +~\S+ [µm]?g +no trace +EcoLogits estimate \(gpt-4o-mini, USA\)[\s\S]*LangGraph two-node graph[\s\S]*toy-model +8\/8[\s\S]*gpt-4o-mini +0\/1 +— +—[\s\S]*Estimated, not measured[\s\S]*gpt-4o-mini +1 +~[\s\S]*The proxy's books: .* = .* attributed to 8 requests \+ .* idle/,
};

/**
 * The numbers a person would have to read in `text` that are too long to read: more than four
 * significant digits (`0.0000021894991541875734`), or an exponent (`4.955860466698899e-8`).
 */
function unreadableNumbers(text: string): string[] {
  return [...text.matchAll(/\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi)]
    .map((m) => m[0])
    .filter((token) => {
      if (/e/i.test(token)) return true;
      const [whole, fraction] = token.split('.');
      const digits = `${whole}${fraction ?? ''}`.replace(/^0+/, '');
      // 4,200 has two significant digits; 4.200 has four.
      return (fraction === undefined ? digits.replace(/0+$/, '') : digits).length > 4;
    });
}

// emissions.csv is for machines (CodeCarbon's columns, 12 significant digits on purpose): the
// readability check skips the CSV block tracker-report.ts prints, from its header to the blank line.
const withoutCsv = (stdout: string) => stdout.replace(/^timestamp,project_name,[^\n]*\n(?:[^\n]+\n)*/m, '');

describe('unreadableNumbers', () => {
  it('finds the raw floats and exponents of issue 22, and passes formatted output', () => {
    expect(unreadableNumbers('0.0000021894991541875734 gCO2eq, 4.955860466698899e-8 kgCO2eq')).toEqual(['0.0000021894991541875734', '4.955860466698899e-8']);
    expect(unreadableNumbers('1e-7 kWh, 2E+3, 12345 tokens, 1.2345 W')).toEqual(['1e-7', '2E+3', '12345', '1.2345']);
    expect(unreadableNumbers('170 µWh, 80.7 µg CO2eq, 1.31 mWh, 97.0 µWh, 8/9, 2026, 42000, 0.25, gpt-4o-mini, 3 steps')).toEqual([]);
  });

  it('skips only the CSV block', () => {
    const stdout = 'emissions.csv:\ntimestamp,project_name,run_id\n2026-01-01T00:00:00.000Z,x,2.42552979278e-7\n\nBoAmps report: 2 requests, 5.106378511111115e-7 kWh\n';
    expect(unreadableNumbers(withoutCsv(stdout))).toEqual(['5.106378511111115e-7']);
  });
});

describe('examples run against the toy model behind the proxy', () => {
  it('lists an expectation for every example', () => {
    expect(examples.sort()).toEqual(Object.keys(expectedOutput).sort());
  });

  it.each(examples)('%s', async (file) => {
    const { code, stdout, stderr } = await runProcess(process.execPath, ['--import', 'tsx', join('examples', file)], { cwd: root, timeoutMs: 60_000, env: { ...process.env, CARBON_TRACE_BASE_URL: '' } });
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(code).toBe(0);
    expect(stdout).toMatch(expectedOutput[file]!);
    // What a person reads: units they know, at most four significant digits, no exponent.
    expect(unreadableNumbers(withoutCsv(stdout))).toEqual([]);
  }, 60_000);
});
