import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../setup/processes';

const root = resolve(import.meta.dirname, '../..');
const run = (args: string[]) => runProcess(process.execPath, ['--import', 'tsx', 'examples/demo.ts', ...args], { cwd: root, timeoutMs: 30_000 });

let closedPortUrl = '';
beforeAll(async () => {
  // A port that was just free: nothing listens there, so connections are refused.
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  closedPortUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/v1`;
  probe.close();
  await once(probe, 'close');
});

describe('npm run demo, as a new user types it', () => {
  it('--help prints the options and exits 0', async () => {
    const { code, stdout, stderr } = await run(['--help']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^Usage: npm run demo -- \[options\]/);
    for (const option of ['--base-url', '--model', '--api-key', '--grid-intensity', '--help']) expect(stdout).toContain(option);
  });

  it.each([
    [['--nope'], /^carbon-trace demo: Unknown option '--nope'/],
    [['--grid-intensity', 'abc'], /^carbon-trace demo: --grid-intensity takes gCO2eq per kWh/],
    [['--base-url', 'not a url'], /^carbon-trace demo: --base-url is not a URL/],
    [['--base-url', 'CLOSED_PORT'], /^carbon-trace demo: cannot reach --base-url http:\/\/127\.0\.0\.1:\d+\/v1: ECONNREFUSED/],
  ])('%j: a one-line error, no stack trace, exit 1', async (args, message) => {
    const { code, stderr } = await run(args.map((a) => (a === 'CLOSED_PORT' ? closedPortUrl : a)));
    expect(code).toBe(1);
    expect(stderr).toMatch(message);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(stderr.trim().split('\n')).toHaveLength(2);
  });
});
