import type { CarbonMetrics } from '../core/types';
import { isFigure } from '../core/units';

// Figures that add up over requests. Mean powers do not (requests may overlap), so a sum over
// several requests leaves them out and says so.
const SUMMED = [
  'energyKwh',
  'gwpKgco2eq',
  'embodiedKgco2eq',
  'cpuEnergyKwh',
  'gpuEnergyKwh',
  'ramEnergyKwh',
  'durationSeconds',
  'promptTokens',
  'completionTokens',
] as const;
const POWERS = ['cpuPowerWatts', 'gpuPowerWatts', 'ramPowerWatts'] as const;

type Member = { values: unknown; state: 'pending' | 'failed' | 'done'; metrics?: CarbonMetrics | undefined };
type Group = { members: Member[]; metadata?: Record<string, unknown> };

/**
 * One request of an `embed` / `embedMany` call, as seen by the embedding middleware.
 *
 * @example
 * ```ts
 * const member = groups.join(params);
 * const metadata = member.settle(metrics); // what the result's providerMetadata.codecarbon gets, if anything
 * ```
 */
export type EmbeddingMember = {
  /**
   * Records how the request ended. Returns the object its result should carry at
   * `providerMetadata.codecarbon`, or `undefined` when it should carry none.
   */
  settle(outcome: { metrics: CarbonMetrics | undefined } | 'failed'): Record<string, unknown> | undefined;
};

/**
 * Ties together the requests of one `embedMany` call, so that its result shows their sum.
 *
 * `embedMany` splits the values into requests (`maxEmbeddingsPerCall`) and merges the requests'
 * `providerMetadata` key by key, the last request's fields winning: left alone, that would show
 * a mix of one request's figures and another's as the whole call's. Every request of one
 * `embedMany` (of ai@6 and ai@7) gets the same `headers` object, which the SDK builds per call
 * (it carries the SDK's `ai/<version>` user agent): that object is the group's key. The first
 * request of a group carries one metadata object; the later ones carry none, so the merged
 * result holds that very object, which is brought up to date in place as each request ends —
 * before `embedMany` returns, since it waits for all of them. A retried request (the same
 * `values` array again) replaces its failed attempt.
 *
 * @example
 * ```ts
 * const groups = createEmbeddingGroups();
 * const member = groups.join(params);
 * ```
 */
export function createEmbeddingGroups(): { join(params: { headers?: unknown; values?: unknown }): EmbeddingMember } {
  const groups = new WeakMap<object, Group>();
  return {
    join(params) {
      const key = groupKey(params?.headers);
      let group = key === undefined ? undefined : groups.get(key);
      if (group === undefined) {
        group = { members: [] };
        if (key !== undefined) groups.set(key, group);
      }
      const values = params?.values;
      // A retry sends the same chunk again: it takes the place of the attempt that failed.
      let member = group.members.find((m) => m.values === values && m.state === 'failed');
      if (member === undefined) {
        member = { values, state: 'pending' };
        group.members.push(member);
      } else {
        member.state = 'pending';
      }
      const joined = member;
      const holder = group.members[0] === joined;
      const theGroup = group;
      return {
        settle(outcome) {
          if (outcome === 'failed') {
            joined.state = 'failed';
          } else {
            joined.state = 'done';
            joined.metrics = outcome.metrics;
          }
          if (theGroup.metadata !== undefined) {
            refresh(theGroup.metadata, theGroup.members);
            return holder ? theGroup.metadata : undefined;
          }
          // Only the first request's result can carry the sum through embedMany's merge.
          if (!holder || joined.state !== 'done' || joined.metrics === undefined) return undefined;
          const sum = sumOf(theGroup.members);
          // A request already known to be untraced: no sum can be right, so the result has none.
          if (sum.trackingMethod === undefined) return undefined;
          theGroup.metadata = sum;
          return sum;
        },
      };
    },
  };
}

function groupKey(headers: unknown): object | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  const agent = (headers as Record<string, unknown>)['user-agent'];
  // Only headers the SDK built for one embed / embedMany call; a caller's own object may be
  // reused across unrelated calls.
  return typeof agent === 'string' && /(^|\s)ai\/\d/.test(agent) ? headers : undefined;
}

function refresh(metadata: Record<string, unknown>, members: readonly Member[]): void {
  for (const key of Object.keys(metadata)) delete metadata[key];
  Object.assign(metadata, sumOf(members));
}

/**
 * The figures of the requests that ended, summed where every request reported the field.
 * A single request is passed through as it was.
 */
function sumOf(members: readonly Member[]): Record<string, unknown> {
  const done = members.filter((m) => m.state === 'done');
  if (done.length === 1 && done[0]!.metrics !== undefined) return structuredCopy(done[0]!.metrics);
  const untraced = done.filter((m) => m.metrics === undefined).length;
  if (untraced > 0) {
    // Without a trackingMethod this is not metrics: getCarbonMetrics gives undefined, never a part sum.
    return { warnings: [`no sum: ${untraced} of ${done.length} embedding requests of this embedMany carried no usable trace`] };
  }
  const all = done.map((m) => m.metrics!);
  const n = all.length;
  const measured = all.every((m) => m.measured === true);
  const sum: Record<string, unknown> = { trackingMethod: measured ? 'codecarbon' : 'codecarbon_estimated', measured };
  const warnings = [`summed over ${n} embedding requests (embedMany split the values into ${n} calls)`];
  if (all.every((m) => typeof m.trackingActive === 'boolean')) sum.trackingActive = all.every((m) => m.trackingActive === true);
  for (const field of SUMMED) {
    const figures = all.map((m) => (m as Record<string, unknown>)[field]).filter(isFigure);
    if (figures.length === 0) continue;
    if (figures.length < n) {
      warnings.push(`${field} left out: ${n - figures.length} of ${n} requests did not report it`);
      continue;
    }
    sum[field] = figures.reduce((a, b) => a + b, 0);
  }
  if (all.some((m) => POWERS.some((p) => m[p] !== undefined))) warnings.push('mean powers left out: they do not add up over requests');
  all.forEach((m, i) => {
    for (const line of m.warnings) warnings.push(`request ${i + 1}: ${line}`);
  });
  sum.warnings = warnings;
  return sum;
}

function structuredCopy(metrics: CarbonMetrics): Record<string, unknown> {
  return JSON.parse(JSON.stringify(metrics)) as Record<string, unknown>;
}
