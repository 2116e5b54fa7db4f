import { JOULES_PER_KWH } from '../../core/units';
import { OTHER_ROW } from './bounded-rows';
import type { EnergyComponent } from '../types';

/**
 * The proxy's totals in the shape Model Garden's `/api/v1/carbon/inference/stats` has, so
 * seeds-clients' `ModelGardenClient.get_carbon_stats()` reads them unchanged. As there, the
 * totals are the whole session's, idle time included. Tokens are prompt + completion as the
 * responses' usage gave them, and `null` (unknown) when a request reported no usage.
 *
 * @example
 * ```ts
 * const body = modelGardenStats({ ...(await proxy.stats()), modelNames: books.modelNames() });
 * ```
 */
export function modelGardenStats(stats: {
  since: string;
  requests: number;
  totalJoules: number;
  attributedJoules: number;
  idleJoules: number;
  unattributedJoules: number;
  emissionsGrams: { total: number };
  tokens: { prompt: number; completion: number; requestsWithUsage: number; requestsExpectingUsage?: number };
  /** The model names the books keep. */
  modelNames: readonly string[];
  byComponent: Partial<Record<EnergyComponent, { measured: boolean }>>;
}): Record<string, unknown> {
  // Never negative: books dated by a clock that was ahead are counted from now.
  const seconds = Math.max(0, (Date.now() - Date.parse(stats.since)) / 1000);
  const requestCount = stats.requests;
  // Unknown once a completion answered 2xx without saying its tokens; errors and other routes have none to say.
  const tokensKnown = stats.tokens.requestsWithUsage >= (stats.tokens.requestsExpectingUsage ?? requestCount);
  const totalTokens = tokensKnown ? stats.tokens.prompt + stats.tokens.completion : null;
  const kg = stats.emissionsGrams.total / 1000;
  const kwh = stats.totalJoules / JOULES_PER_KWH;
  const models = stats.modelNames.filter((m) => m !== OTHER_ROW);
  const shown = models.slice(0, 10);
  const more = models.length - shown.length + (stats.modelNames.includes(OTHER_ROW) ? 1 : 0);
  return {
    tracking: true,
    model_name: models.length === 0 ? null : `${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`,
    request_count: requestCount,
    total_tokens: totalTokens,
    requests_with_usage: stats.tokens.requestsWithUsage,
    duration_seconds: seconds,
    requests_per_second: seconds > 0 ? requestCount / seconds : 0,
    tokens_per_second: totalTokens !== null && seconds > 0 ? totalTokens / seconds : null,
    emissions_kg_co2: kg,
    emissions_g_co2: kg * 1000,
    energy_consumed_kwh: kwh,
    energy_kwh: kwh,
    ...(requestCount > 0 ? { emissions_per_request_g: (kg * 1000) / requestCount, energy_per_request_wh: (kwh * 1000) / requestCount } : {}),
    ...(totalTokens ? { emissions_per_1k_tokens_g: (kg * 1e6) / totalTokens } : {}),
    attributed_energy_kwh: stats.attributedJoules / JOULES_PER_KWH,
    idle_energy_kwh: stats.idleJoules / JOULES_PER_KWH,
    unattributed_energy_kwh: stats.unattributedJoules / JOULES_PER_KWH,
    measured: Object.values(stats.byComponent).every((c) => c?.measured),
  };
}
