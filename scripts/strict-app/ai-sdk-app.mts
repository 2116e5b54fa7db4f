// An AI SDK app, as the README's quickstart writes it.
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, streamText, wrapLanguageModel } from 'ai';
import { carbonTraceMiddleware, getCarbonEstimate, getCarbonMetrics } from 'carbon-trace/ai-sdk';
import { createOpenAI } from '@ai-sdk/openai';

const garden = createOpenAICompatible({ name: 'garden', baseURL: 'http://gpu-box:8000/v1' });
const model = wrapLanguageModel({ model: garden('llama-3.1-8b'), middleware: carbonTraceMiddleware() });

export async function quickstart(): Promise<number> {
  const result = await generateText({ model, prompt: 'Hello' });
  const carbon = getCarbonMetrics(result);
  const streamed = streamText({ model, prompt: 'Hello' });
  // @ts-expect-error a stream result holds promises: pass `await result.providerMetadata`
  getCarbonMetrics(streamed);
  const fromStream = getCarbonMetrics(await streamed.providerMetadata);
  return (carbon?.gwpKgco2eq ?? 0) * 1000 + (fromStream?.energyKwh ?? 0);
}

const openai = createOpenAI({ apiKey: 'sk-test' });
const estimated = wrapLanguageModel({ model: openai.chat('gpt-4o-mini'), middleware: carbonTraceMiddleware({ estimate: { zone: 'FR' } }) });

export async function estimates(): Promise<number> {
  const result = await generateText({ model: estimated, prompt: 'Hello' });
  const estimate = getCarbonEstimate(result);
  return (estimate?.gwpKgco2eq ?? 0) + (estimate?.max?.energyKwh ?? 0);
}

// A callback whose arrow returns a value (push gives a number) is a callback all the same.
const seen: unknown[] = [];
export const collecting = carbonTraceMiddleware({ onMetrics: (metrics) => seen.push(metrics) });
