// streamText: the metrics arrive with the finish part, so read them once the stream is done.
// Run: npx tsx examples/ai-sdk-stream.ts
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { streamText, wrapLanguageModel } from 'ai';
import { formatEmissions, formatEnergy, getCarbonMetrics } from 'carbon-trace';
import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
import { connect } from './server/connection';

const server = await connect();
const provider = createOpenAICompatible({ name: 'garden', baseURL: server.baseURL, apiKey: server.apiKey, includeUsage: true });
const model = wrapLanguageModel({ model: provider(server.model), middleware: carbonTraceMiddleware() });

const result = streamText({
  model,
  prompt: 'Tell me about grid carbon intensity.',
  onFinish: ({ providerMetadata }) => console.log(`\nonFinish: ${formatEmissions(getCarbonMetrics(providerMetadata)?.gwpKgco2eq)}`),
});
for await (const text of result.textStream) process.stdout.write(text);

const carbon = getCarbonMetrics(await result.providerMetadata);
console.log(`${formatEnergy(carbon?.energyKwh)}, ${formatEmissions(carbon?.gwpKgco2eq)}`);
await server.close();
