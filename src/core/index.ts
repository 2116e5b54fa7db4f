export { createCarbonTraceAccumulator, type CarbonTraceAccumulator } from './accumulator';
export { getCarbonMetrics, type NotAStreamResult } from './get-carbon-metrics';
export { CARBON_METADATA_KEY, CARBON_TRACE_FIELD, extractCarbonMetrics, findCarbonTrace, hasCarbonFigure, parseCarbonTrace } from './parse-carbon-trace';
export { addCarbonMetrics, emptyCarbonTotals, sumCarbonMetrics, sumTotals } from './sum-carbon-metrics';
export type {
  CallOutcome,
  CarbonAttributes,
  CarbonFieldSums,
  CarbonMetrics,
  CarbonMetricsRecorder,
  CarbonRecordContext,
  CarbonSessionTotals,
  CarbonSummedField,
  CarbonTotals,
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
export { withGridIntensity, type GridIntensity } from './grid-intensity';
export { carbonSpanAttributes } from './span-attributes';
