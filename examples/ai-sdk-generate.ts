// generateText through the middleware: the metrics are at result.providerMetadata.codecarbon.
// Run: npx tsx examples/ai-sdk-generate.ts   (CARBON_TRACE_BASE_URL=… to use a real server)
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, wrapLanguageModel } from 'ai';
import { formatEmissions, formatEnergy, getCarbonMetrics } from 'carbon-trace';
import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
import { connect } from './server/connection';

const server = await connect();
const provider = createOpenAICompatible({ name: 'garden', baseURL: server.baseURL, apiKey: server.apiKey });
const model = wrapLanguageModel({ model: provider(server.model), middleware: carbonTraceMiddleware() });

const result = await generateText({ model, prompt: 'Why does inference use energy?' });
const carbon = getCarbonMetrics(result); // same as result.providerMetadata?.codecarbon

console.log(result.text);
// e.g. "246 µWh, 117 µg CO2eq (codecarbon_estimated)"; a dash for a figure the call did not have.
console.log(`${formatEnergy(carbon?.energyKwh)}, ${formatEmissions(carbon?.gwpKgco2eq)} (${carbon?.trackingMethod})`);
await server.close();
