export { ESTIMATE_METHOD, estimateCallImpact, type EstimateCallInput, type EstimateOptions } from './estimate-call-impact';
export { ecologitsProviderOf, estimateProviders, findEstimateModel, type EstimateModel } from './models';
export { ECOLOGITS_RELEASE } from './data/ecologits';
export { getCarbonEstimate } from '../core/get-carbon-metrics';
export { ESTIMATE_METADATA_KEY } from '../core/parse-carbon-trace';
export type { CarbonEstimate, CarbonEstimateBound, CarbonEstimateInputs, CarbonRange, EstimateMethod } from '../core/types';
