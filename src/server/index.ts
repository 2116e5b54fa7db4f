export { createEnergyMeter, type ComponentStats, type EnergyMeter, type EnergyMeterOptions, type MeteredRequest, type MeterStats, type ModelBook } from './meter/meter';
export { splitSlice, type SliceParticipant } from './meter/attribution';
export { raplSource, RaplUnavailableError, type RaplSourceOptions } from './sources/rapl';
export { nvmlSource, type NvmlSourceOptions } from './sources/nvml';
export { amdSmiSource, type AmdSmiSourceOptions } from './sources/amd-smi';
export { powermetricsSource, type PowermetricsSourceOptions } from './sources/powermetrics';
export type { ToolEnergySource, ToolStatus, ToolSupervisionOptions } from './sources/supervisor';
export { cpuTdpWatts, estimateSource, ramPowerWatts, type CpuTimes, type EstimateSourceOptions } from './sources/estimate';
export { autoSources, type AutoSourceOptions } from './sources/auto';
export { ENERGY_COMPONENTS, type ComponentJoules, type EnergyComponent, type EnergyReading, type EnergySource, type RequestEnergy } from './types';
export { isCompletionRequest, withCarbonTrace, type FetchHandler, type WithCarbonTraceOptions } from './with-carbon-trace';
export { carbonTraceRecord, WORLD_AVERAGE_GRID, type ResolvedGridIntensity } from './wires/trace-record';
export { toNodeListener } from './node';
export { createCarbonProxy, type BookRow, type BookedRequest, type CarbonProxy, type CarbonProxyOptions, type ProxyStats, type RecentRequest, type UpstreamState } from './proxy';
export { type GridIntensityOption } from './grid-source';
export { OTHER_ROW } from './books/bounded-rows';
export { dashboardHtml } from './proxy/dashboard';
export {
  createFleetShipper,
  GROUP_KEYS,
  parseReportQuery,
  redactDatabaseUrl,
  reportFromDatabase,
  reportFromLedger,
  type FleetShipper,
  type FleetShipperOptions,
  type FleetShipperState,
  type GroupKey,
  type IdleFigures,
  type Report,
  type ReportFigures,
  type ReportGroup,
  type ReportQuery,
} from './fleet';
export { reportCsv, reportTable } from './fleet/format';
