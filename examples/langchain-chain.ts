// A chain: onRootRunEnd reports the totals of every model call made by one invocation.
// Run: npx tsx examples/langchain-chain.ts
import { StringOutputParser } from '@langchain/core/output_parsers';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { ChatOpenAI } from '@langchain/openai';
import { formatEmissions, formatEnergy } from 'carbon-trace';
import { CarbonTraceCallbackHandler } from 'carbon-trace/langchain';
import { connect } from './server/connection';

const server = await connect();
const carbon = new CarbonTraceCallbackHandler({
  onRootRunEnd: (totals) => console.log(`chain: ${totals.calls} model call(s), ${formatEnergy(totals.energyKwh)}, ${formatEmissions(totals.gwpKgco2eq)}`),
});
const model = new ChatOpenAI({ model: server.model, apiKey: server.apiKey, configuration: { baseURL: server.baseURL, fetch: carbon.fetch } });
const chain = ChatPromptTemplate.fromTemplate('Explain {topic} in one sentence.').pipe(model).pipe(new StringOutputParser());

// Attach the handler at invoke time on the outermost runnable, so it sees the whole tree.
console.log(await chain.invoke({ topic: 'embodied carbon' }, { callbacks: [carbon] }));
await server.close();
