export {
  CarbonTraceCallbackHandler,
  type CarbonLLMRunInfo,
  type CarbonTraceCallbackHandlerFields,
} from './carbon-trace-callback-handler';
export { getCarbonMetrics } from '../core/get-carbon-metrics';
export { CARBON_METADATA_KEY } from '../core/parse-carbon-trace';
export type { CallOutcome, CarbonAttributes, CarbonMetrics, CarbonMetricsRecorder, CarbonTotals } from '../core/types';
