import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runProcess } from '../setup/processes';

const root = resolve(import.meta.dirname, '../..');

// Each example starts the toy model behind a carbon-trace proxy itself, as a user running it would.
const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.ts'));

// What each one must print: the number it exists to show.
const expectedOutput: Record<string, RegExp> = {
  'ai-sdk-generate.ts': /\d[\d.e-]* kWh, \d[\d.e-]* kgCO2eq \(codecarbon_estimated\)/,
  'ai-sdk-stream.ts': /onFinish: \d[\d.e-]* kgCO2eq[\s\S]*kWh/,
  'ai-sdk-tool-loop.ts': /2 steps \(2 traced\): \d[\d.e-]* kWh/,
  'langchain-model.ts': /\[onMetrics\] toy-model: \d[\d.e-]* kgCO2eq[\s\S]*tracedCalls: 2/,
  'langchain-chain.ts': /chain: 1 model call\(s\), \d[\d.e-]* kWh/,
  'langchain-graph.ts': /graph: 2 model calls, \d[\d.e-]* kgCO2eq in total/,
  'tracker-report.ts': /^timestamp,project_name,run_id[\s\S]*BoAmps report: 2 requests, \d[\d.e-]* kWh[\s\S]*in Sweden: \d[\d.e-]* kgCO2eq/m,
  'demo.ts':
    /AI SDK {3}generateText[\s\S]*AI SDK {3}API model, no trace +~\S+ [µm]?Wh +~\S+ [µm]?g +no trace +EcoLogits estimate \(gpt-4o-mini, USA\)[\s\S]*LangGraph two-node graph[\s\S]*toy-model +8\/8[\s\S]*gpt-4o-mini +0\/1 +— +—[\s\S]*Estimated, not measured[\s\S]*gpt-4o-mini +1 +~[\s\S]*The proxy's books: .* = .* attributed to 8 requests \+ .* idle/,
};

describe('examples run against the toy model behind the proxy', () => {
  it('lists an expectation for every example', () => {
    expect(examples.sort()).toEqual(Object.keys(expectedOutput).sort());
  });

  it.each(examples)('%s', async (file) => {
    const { code, stdout, stderr } = await runProcess(process.execPath, ['--import', 'tsx', join('examples', file)], { cwd: root, timeoutMs: 60_000, env: { ...process.env, CARBON_TRACE_BASE_URL: '' } });
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(code).toBe(0);
    expect(stdout).toMatch(expectedOutput[file]!);
  }, 60_000);
});
