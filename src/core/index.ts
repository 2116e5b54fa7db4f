export { createCarbonTraceAccumulator, type CarbonTraceAccumulator } from './accumulator';
export { getCarbonEstimate, getCarbonMetrics, isCarbonEstimate, isCarbonMetrics, type NotAStreamResult } from './get-carbon-metrics';
export { CARBON_METADATA_KEY, CARBON_TRACE_FIELD, ESTIMATE_METADATA_KEY, extractCarbonMetrics, findCarbonTrace, hasCarbonFigure, parseCarbonTrace, type ExtractCarbonMetricsOptions } from './parse-carbon-trace';
export { addCarbonEstimate, addCarbonMetrics, emptyCarbonTotals, sumCarbonEstimates, sumCarbonMetrics, sumTotals } from './sum-carbon-metrics';
export type { CarbonEstimateSetting } from './call-estimator';
export type {
  CallOutcome,
  CarbonAttributes,
  CarbonEstimate,
  CarbonEstimateBound,
  CarbonEstimateInputs,
  CarbonFieldSums,
  CarbonMetrics,
  CarbonMetricsRecorder,
  CarbonRange,
  CarbonRecordContext,
  CarbonSessionTotals,
  CarbonSummedField,
  CarbonTotals,
  EstimateMethod,
  TrackingMethod,
} from './types';
export type { CarbonTraceWarningHandler } from './report';
export {
  carbonTraceWireSchema,
  MAX_WIRE_VALUE,
  type CarbonTraceWire,
  type CarbonTraceWireField,
} from './wire-schema';
export { CarbonTracker, type CarbonTrackerOptions } from './tracker';
export { OVERFLOW_ATTRIBUTE_VALUE, OVERFLOW_MODEL, UNATTRIBUTED, UNKNOWN_MODEL } from './model-keys';
export { toBoAmpsReport, type BoAmpsComponent, type BoAmpsReport, type BoAmpsReportOptions } from './boamps-report';
export { EMISSIONS_CSV_COLUMNS, toEmissionsCsv, type EmissionsCsvOptions } from './emissions-csv';
export {
  isGridIntensityProvider,
  withGridIntensity,
  type GridIntensity,
  type GridIntensityProvider,
  type GridIntensityReading,
  type GridIntensitySetting,
} from './grid-intensity';
export { formatEmissions, formatEnergy, NO_FIGURE, type FormatEmissionsOptions } from './format';
export { carbonSpanAttributes } from './span-attributes';
