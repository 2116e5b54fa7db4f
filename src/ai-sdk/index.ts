export {
  carbonTraceMiddleware,
  type CarbonTraceAttributeCall,
  type CarbonTraceCallContext,
  type CarbonTraceMiddleware,
  type CarbonTraceMiddlewareOptions,
} from './carbon-trace-middleware';
export { getCarbonMetrics } from '../core/get-carbon-metrics';
export { CARBON_METADATA_KEY } from '../core/parse-carbon-trace';
export type { CallOutcome, CarbonAttributes, CarbonMetrics, CarbonMetricsRecorder, CarbonTotals } from '../core/types';
