export {
  CARBON_METADATA_KEY,
  carbonTraceMiddleware,
  type CarbonMetricsRecorder,
  type CarbonTraceCallContext,
  type CarbonTraceMiddleware,
  type CarbonTraceMiddlewareOptions,
} from './carbon-trace-middleware';
export { getCarbonMetrics } from './get-carbon-metrics';
export type { CarbonMetrics, CarbonTotals } from '../core/types';
