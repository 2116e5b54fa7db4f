/**
 * Compiled by `npm run typecheck`, never run: the middleware must be accepted by each major's
 * `wrapLanguageModel` with its own provider, and the results must expose our metrics.
 */
import { generateText as generateText5, wrapLanguageModel as wrap5 } from 'ai-v5';
import { embedMany as embedMany6, generateText as generateText6, wrapEmbeddingModel as wrapEmbed6, wrapLanguageModel as wrap6 } from 'ai-v6';
import { embed as embed7, generateText as generateText7, streamText as streamText7, wrapEmbeddingModel as wrapEmbed7, wrapLanguageModel as wrap7 } from 'ai';
import { createOpenAICompatible as create1 } from 'ai-sdk-openai-compatible-v1';
import { createOpenAICompatible as create2 } from 'ai-sdk-openai-compatible-v2';
import { createOpenAICompatible as create3 } from '@ai-sdk/openai-compatible';
import { createOpenAI } from '@ai-sdk/openai';
import { createOllama } from 'ollama-ai-provider-v2';
import { sumCarbonMetrics, type CarbonMetrics, type CarbonTotals } from '../../src/index';
import { carbonTraceMiddleware, getCarbonMetrics } from '../../src/ai-sdk/index';

const baseURL = 'http://127.0.0.1:1/v1';

export async function ai5(): Promise<CarbonMetrics | undefined> {
  const model = wrap5({ model: create1({ name: 'garden', baseURL })('m'), middleware: carbonTraceMiddleware() });
  const result = await generateText5({ model, prompt: 'x' });
  return getCarbonMetrics(result);
}

export async function ai6(): Promise<CarbonTotals> {
  const model = wrap6({ model: create2({ name: 'garden', baseURL })('m'), middleware: [carbonTraceMiddleware({ onMetrics: () => {} })] });
  const result = await generateText6({ model, prompt: 'x' });
  return sumCarbonMetrics(result.steps.map(getCarbonMetrics));
}

export async function ai7(): Promise<CarbonMetrics | undefined> {
  const model = wrap7({ model: create3({ name: 'garden', baseURL })('m'), middleware: carbonTraceMiddleware() });
  await generateText7({ model, prompt: 'x' });
  const chat = wrap7({ model: createOpenAI({ baseURL }).chat('m'), middleware: carbonTraceMiddleware() });
  const result = streamText7({ model: chat, prompt: 'x' });
  // A stream result holds promises: the types refuse it and say what to pass.
  // @ts-expect-error a stream result holds promises: pass `await result.providerMetadata`
  getCarbonMetrics(result);
  return getCarbonMetrics(await result.providerMetadata);
}

/** The one middleware is also accepted by `wrapEmbeddingModel` of ai@6 and ai@7, and its fetch by the providers. */
export async function embeddings(): Promise<Array<CarbonMetrics | undefined>> {
  const carbon = carbonTraceMiddleware();
  const seven = wrapEmbed7({ model: createOpenAI({ baseURL }).embedding('e'), middleware: carbon });
  const six = wrapEmbed6({ model: create2({ name: 'garden', baseURL }).embeddingModel('e'), middleware: [carbon] });
  const ollama = createOllama({ baseURL, fetch: carbon.fetch });
  const chat = wrap7({ model: ollama('llama3.2'), middleware: carbon });
  await generateText7({ model: chat, prompt: 'x' });
  return [getCarbonMetrics(await embed7({ model: seven, value: 'x' })), getCarbonMetrics(await embedMany6({ model: six, values: ['x'] }))];
}
