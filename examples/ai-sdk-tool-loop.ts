// A tool loop: every step is a model call with its own trace. result.providerMetadata is the
// last step only; sum the steps for the whole loop.
// Run: npx tsx examples/ai-sdk-tool-loop.ts
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, jsonSchema, stepCountIs, tool, wrapLanguageModel } from 'ai';
import { formatEmissions, formatEnergy, getCarbonMetrics, sumCarbonMetrics } from 'carbon-trace';
import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
import { connect } from './server/connection';

const server = await connect();
const provider = createOpenAICompatible({ name: 'garden', baseURL: server.baseURL, apiKey: server.apiKey });
const model = wrapLanguageModel({ model: provider(server.model), middleware: carbonTraceMiddleware() });

const result = await generateText({
  model,
  prompt: 'What is the weather in Paris?',
  tools: {
    weather: tool({
      description: 'The weather in a city',
      inputSchema: jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
      execute: async ({ city }) => ({ city, sky: 'sunny', celsius: 21 }),
    }),
  },
  stopWhen: stepCountIs(5),
});

const total = sumCarbonMetrics(result.steps.map(getCarbonMetrics));
console.log(result.text);
console.log(`${total.calls} steps (${total.tracedCalls} traced): ${formatEnergy(total.energyKwh)}, ${formatEmissions(total.gwpKgco2eq)}`);
await server.close();
