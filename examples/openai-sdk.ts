// The plain `openai` SDK: the response keeps the server's x_carbon_trace (the SDK's types do not
// declare it); extractCarbonMetrics takes the whole response, so no cast is needed.
// Run: npx tsx examples/openai-sdk.ts   (CARBON_TRACE_BASE_URL=… to use a real server)
import OpenAI from 'openai';
import { extractCarbonMetrics, formatEmissions, formatEnergy } from 'carbon-trace';
import { connect } from './server/connection';

const server = await connect();
const client = new OpenAI({ baseURL: server.baseURL, apiKey: server.apiKey });

const response = await client.chat.completions.create({
  model: server.model,
  messages: [{ role: 'user', content: 'Why does inference use energy?' }],
});
const carbon = extractCarbonMetrics(response); // CarbonMetrics | undefined, from response.x_carbon_trace
console.log(response.choices[0]?.message.content);
console.log(`${formatEnergy(carbon?.energyKwh)}, ${formatEmissions(carbon?.gwpKgco2eq)} (${carbon?.trackingMethod})`);

await server.close();
