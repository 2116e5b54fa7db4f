// A two-node LangGraph graph: one root run, two model calls, one total.
// Run: npx tsx examples/langchain-graph.ts
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { ChatOpenAI } from '@langchain/openai';
import { formatEmissions, getCarbonMetrics } from 'carbon-trace';
import { CarbonTraceCallbackHandler } from 'carbon-trace/langchain';
import { connect } from './server/connection';

const server = await connect();
const carbon = new CarbonTraceCallbackHandler({
  onRootRunEnd: (totals) => console.log(`graph: ${totals.calls} model calls, ${formatEmissions(totals.gwpKgco2eq)} in total`),
});
const model = new ChatOpenAI({ model: server.model, apiKey: server.apiKey, configuration: { baseURL: server.baseURL, fetch: carbon.fetch } });

const graph = new StateGraph(MessagesAnnotation)
  .addNode('draft', async (state) => ({ messages: [await model.invoke(state.messages)] }))
  .addNode('review', async (state) => ({ messages: [await model.invoke([...state.messages, { role: 'user', content: 'Now shorten it.' }])] }))
  .addEdge(START, 'draft')
  .addEdge('draft', 'review')
  .addEdge('review', END)
  .compile();

const state = await graph.invoke({ messages: [{ role: 'user', content: 'Write a note on data-centre cooling.' }] }, { callbacks: [carbon] });
for (const message of state.messages.slice(1)) {
  console.log(`${message.content}\n  → ${formatEmissions(getCarbonMetrics(message)?.gwpKgco2eq)}`);
}
await server.close();
