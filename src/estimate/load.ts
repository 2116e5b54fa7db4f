import type { EstimateLoader } from '../core/call-estimator';

/**
 * What the adapters hand the core to estimate calls: imports the estimate module on first use, so
 * its model data is a chunk of its own, downloaded, parsed and held only by apps that turn
 * estimates on.
 *
 * @example
 * ```ts
 * const estimator = createCallEstimator(options.estimate, warn, loadEstimateCall);
 * ```
 */
export const loadEstimateCall: EstimateLoader = () => import('./estimate-call-impact').then((module) => module.estimateCallImpact);
