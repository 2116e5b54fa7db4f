/**
 * What deploy/ ships stays in step with the CLI and the metrics: every flag the compose file and the
 * Kubernetes sidecar pass exists, and every metric the dashboard and rules name is one /metrics
 * serves.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packedProject, runPacked } from './packed-cli';
import { createProxyBooks } from '../../src/server/books';
import { createEnergyMeter } from '../../src/server/index';
import { fleetMetrics } from '../../src/server/fleet/metrics';

const root = resolve(import.meta.dirname, '../..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

describe('deploy/', () => {
  it('the compose file and the Kubernetes sidecar pass only flags `carbon-trace proxy` has', async () => {
    const { stdout } = await runPacked(packedProject('proxy-cli'), ['proxy', '--help']);
    const known = new Set([...stdout.matchAll(/^\s+(--[a-z-]+)/gm)].map((m) => m[1]));
    for (const file of ['deploy/docker-compose.yml', 'deploy/kubernetes/sidecar.yaml']) {
      // Every quoted flag but npx's --yes and vLLM's --model (vLLM's --host and --port are the proxy's too).
      const ours = [...read(file).matchAll(/"(--[a-z-]+)"/g)].map((m) => m[1]!).filter((f) => f !== '--yes' && f !== '--model');
      expect(ours.length).toBeGreaterThan(4);
      for (const flag of ours) expect(known, `${file}: ${flag}`).toContain(flag);
    }
  });

  it('every metric the dashboard and the rules name is one /metrics serves', async () => {
    const meter = createEnergyMeter({ sources: [], sampleIntervalMs: 0, onWarning: false });
    const books = createProxyBooks({ warn: () => {} });
    const grid = { gCo2PerKwh: 56, source: 'given' };
    // The books' families, and the fleet's a proxy with --db adds.
    const text = books.prometheus(books.combine(meter.stats(), grid), grid) + fleetMetrics({ database: 'postgres://db', connected: true, sentRows: 0, sentIdle: 0, waitingBytes: 0, setAsideRows: 0 });
    const served = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]));
    await meter.close();
    const named = new Set([...`${read('deploy/grafana/carbon-trace-dashboard.json')}\n${read('deploy/prometheus/rules.yml')}`.matchAll(/(?<![:\w])(carbon_trace_[a-z_]+)(?![:\w])/g)].map((m) => m[1]!));
    expect(named.size).toBeGreaterThan(10);
    for (const name of named) expect(served, name).toContain(name);
  });
});
