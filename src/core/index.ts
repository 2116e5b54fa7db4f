export { createCarbonTraceAccumulator, type CarbonTraceAccumulator } from './accumulator';
export { CARBON_TRACE_FIELD, extractCarbonMetrics, findCarbonTrace, parseCarbonTrace } from './parse-carbon-trace';
export { addCarbonMetrics, emptyCarbonTotals, sumCarbonMetrics } from './sum-carbon-metrics';
export type { CarbonMetrics, CarbonSessionTotals, CarbonTotals, TrackingMethod } from './types';
export {
  carbonTraceWireSchema,
  MAX_WIRE_VALUE,
  type CarbonTraceWire,
  type CarbonTraceWireField,
} from './wire-schema';
