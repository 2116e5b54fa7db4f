export {
  CarbonTraceCallbackHandler,
  type CarbonLLMRunInfo,
  type CarbonTraceCallbackHandlerFields,
} from './carbon-trace-callback-handler';
export { getCarbonEstimate, getCarbonMetrics } from '../core/get-carbon-metrics';
export { CARBON_METADATA_KEY, ESTIMATE_METADATA_KEY } from '../core/parse-carbon-trace';
export type { CallKind, CallOutcome, CarbonAttributes, CarbonEstimate, CarbonMetrics, CarbonMetricsRecorder, CarbonTotals } from '../core/types';
export type { CarbonEstimateSetting } from '../core/call-estimator';
export type { GridIntensity, GridIntensityProvider, GridIntensityReading, GridIntensitySetting } from '../core/grid-intensity';
