export {
  carbonTraceMiddleware,
  type CarbonTraceCallContext,
  type CarbonTraceMiddleware,
  type CarbonTraceMiddlewareOptions,
} from './carbon-trace-middleware';
export { getCarbonMetrics } from '../core/get-carbon-metrics';
export { CARBON_METADATA_KEY } from '../core/parse-carbon-trace';
export type { CarbonMetrics, CarbonMetricsRecorder, CarbonTotals } from '../core/types';
