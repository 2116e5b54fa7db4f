// The plain `openai` SDK, streaming: the trace rides on the last chunks (the one with
// finish_reason, or the usage-only one), so feed every chunk to an accumulator and build once.
// Run: npx tsx examples/openai-sdk-stream.ts
import OpenAI from 'openai';
import { createCarbonTraceAccumulator, formatEmissions, formatEnergy } from 'carbon-trace';
import { connect } from './server/connection';

const server = await connect();
const client = new OpenAI({ baseURL: server.baseURL, apiKey: server.apiKey });

const stream = await client.chat.completions.create({
  model: server.model,
  messages: [{ role: 'user', content: 'Tell me about grid carbon intensity.' }],
  stream: true,
  stream_options: { include_usage: true },
});
const carbon = createCarbonTraceAccumulator();
for await (const chunk of stream) {
  carbon.add(chunk); // costs a key lookup on chunks without a trace
  process.stdout.write(chunk.choices[0]?.delta.content ?? '');
}
const metrics = carbon.build(); // the last trace seen, or undefined
console.log(`\n${formatEnergy(metrics?.energyKwh)}, ${formatEmissions(metrics?.gwpKgco2eq)} (${metrics?.trackingMethod})`);

await server.close();
