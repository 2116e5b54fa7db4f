// A ChatOpenAI call: the metrics are at message.response_metadata.codecarbon.
// Run: npx tsx examples/langchain-model.ts
import { ChatOpenAI } from '@langchain/openai';
import { formatEmissions, formatEnergy, getCarbonMetrics } from 'carbon-trace';
import { CarbonTraceCallbackHandler } from 'carbon-trace/langchain';
import { connect } from './server/connection';

const server = await connect();
const carbon = new CarbonTraceCallbackHandler({
  onMetrics: (metrics, run) => console.log(`[onMetrics] ${run.modelName}: ${formatEmissions(metrics?.gwpKgco2eq)}`),
});
// handler.fetch sees every response the model receives, streamed or not.
const model = new ChatOpenAI({ model: server.model, apiKey: server.apiKey, configuration: { baseURL: server.baseURL, fetch: carbon.fetch } });

const message = await model.invoke('What is a watt-hour?', { callbacks: [carbon] });
console.log(message.content);
const metrics = getCarbonMetrics(message); // message.response_metadata.codecarbon, typed
console.log(`response_metadata.codecarbon: ${formatEnergy(metrics?.energyKwh)}, ${formatEmissions(metrics?.gwpKgco2eq)}, ${metrics?.completionTokens} tokens (${metrics?.trackingMethod})`);

let streamed = '';
for await (const chunk of await model.stream('And a kilowatt-hour?', { callbacks: [carbon] })) streamed += chunk.content;
console.log(streamed);
const totals = carbon.totals();
console.log(`all calls so far: ${totals.tracedCalls}/${totals.calls} traced, ${formatEnergy(totals.energyKwh)}, ${formatEmissions(totals.gwpKgco2eq)}`);
await server.close();
