// One CarbonTracker shared by both adapters, then CodeCarbon's emissions.csv and a BoAmps report.
// Run: npx tsx examples/tracker-report.ts
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, wrapLanguageModel } from 'ai';
import { CarbonTracker, formatEmissions, formatEnergy, getCarbonMetrics } from 'carbon-trace';
import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
import { withGridIntensity } from 'carbon-trace/grid';
import { CarbonTraceCallbackHandler } from 'carbon-trace/langchain';
import { connect } from './server/connection';

const server = await connect();
const tracker = new CarbonTracker();

const garden = createOpenAICompatible({ name: 'garden', baseURL: server.baseURL, apiKey: server.apiKey });
const model = wrapLanguageModel({ model: garden(server.model), middleware: carbonTraceMiddleware({ tracker }) });
const result = await generateText({ model, prompt: 'Hello from the AI SDK' });

const handler = new CarbonTraceCallbackHandler({ tracker });
const chat = new ChatOpenAI({ model: server.model, apiKey: server.apiKey, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
await chat.invoke('Hello from LangChain', { callbacks: [handler] });

console.log('emissions.csv:\n' + tracker.toEmissionsCsv({ projectName: 'example' }));

const report = tracker.toBoAmpsReport({
  infrastructure: { infraType: 'onPremise', components: [{ componentType: 'cpu', nbComponent: 1 }] },
  environment: { country: 'france' },
});
console.log(`BoAmps report: ${report.task.nbRequest} requests, ${formatEnergy(report.measures[0]!.powerConsumption)}`);

// The same call's emissions if it had run on the Swedish grid (Ember averages via CO2.js).
const metrics = getCarbonMetrics(result);
if (metrics) console.log(`in Sweden: ${formatEmissions(withGridIntensity(metrics, { zone: 'SWE' }).gwpKgco2eq)}`);
await server.close();
