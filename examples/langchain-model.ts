// A ChatOpenAI call: the metrics are at message.response_metadata.codecarbon.
// Run: npx tsx examples/langchain-model.ts
import { ChatOpenAI } from '@langchain/openai';
import { getCarbonMetrics } from 'carbon-trace';
import { CarbonTraceCallbackHandler } from 'carbon-trace/langchain';
import { connect } from './server/connection';

const server = await connect();
const carbon = new CarbonTraceCallbackHandler({
  onMetrics: (metrics, run) => console.log(`[onMetrics] ${run.modelName}: ${metrics?.gwpKgco2eq} kgCO2eq`),
});
// handler.fetch sees every response the model receives, streamed or not.
const model = new ChatOpenAI({ model: server.model, apiKey: server.apiKey, configuration: { baseURL: server.baseURL, fetch: carbon.fetch } });

const message = await model.invoke('What is a watt-hour?', { callbacks: [carbon] });
console.log(message.content);
console.log('response_metadata.codecarbon:', getCarbonMetrics(message));

let streamed = '';
for await (const chunk of await model.stream('And a kilowatt-hour?', { callbacks: [carbon] })) streamed += chunk.content;
console.log(streamed);
console.log('all calls so far:', carbon.totals());
await server.close();
