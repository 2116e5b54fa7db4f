// A LangChain.js service without the DOM lib, as the README's quickstart writes it.
import { ChatOpenAI } from '@langchain/openai';
import { CarbonTracker, parseCarbonTrace, sumCarbonMetrics, type CarbonMetrics } from 'carbon-trace';
import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
import { gridIntensityOfZone, withGridIntensity } from 'carbon-trace/grid';
import { CarbonTraceCallbackHandler, getCarbonMetrics } from 'carbon-trace/langchain';
import { createOtelCarbonRecorder } from 'carbon-trace/otel';
import { estimateCallImpact, type CarbonEstimate } from 'carbon-trace/estimate';

const tracker = new CarbonTracker({ maxModels: 100 });
const carbon = new CarbonTraceCallbackHandler({ tracker: [tracker, createOtelCarbonRecorder({ attributeKeys: ['feature'] })], attributeKeys: ['feature'] });
const model = new ChatOpenAI({
  model: 'llama-3.1-8b',
  apiKey: 'not-needed',
  configuration: { baseURL: 'http://gpu-box:8000/v1', fetch: carbon.fetch },
});

export async function quickstart(): Promise<number> {
  const message = await model.invoke('Hello', { callbacks: [carbon], metadata: { feature: 'chat' } });
  const metrics: CarbonMetrics | undefined = getCarbonMetrics(message);
  const grams = (metrics?.gwpKgco2eq ?? 0) * 1000;
  const local = metrics ? withGridIntensity(metrics, { zone: 'FR' }) : undefined;
  return grams + (local?.gwpKgco2eq ?? 0) + (gridIntensityOfZone('SE')?.gCo2PerKwh ?? 0) + sumCarbonMetrics([parseCarbonTrace({})]).calls;
}

export const middleware = carbonTraceMiddleware({ attributes: { service: 'x' } });

export const estimate: CarbonEstimate | undefined = estimateCallImpact({ provider: 'mistral', modelId: 'mistral-large-latest', outputTokens: 100, latencySeconds: 2 });
export const estimating = new CarbonTraceCallbackHandler({ estimate: true, onRootRunEnd: (totals, { estimates }) => void (totals.calls + (estimates.gwpKgco2eq ?? 0)) });

// Callbacks whose arrows return a value (push gives a number) are callbacks all the same.
const seenRuns: unknown[] = [];
export const collectingHandler = new CarbonTraceCallbackHandler({ onMetrics: (metrics) => seenRuns.push(metrics), onRootRunEnd: (totals) => seenRuns.push(totals) });
