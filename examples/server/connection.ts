/**
 * Where the examples send their requests: a real server when CARBON_TRACE_BASE_URL is set
 * (with CARBON_TRACE_MODEL and, if needed, CARBON_TRACE_API_KEY), else the embedded demo
 * server, started for the example and stopped after it.
 */
import { startDemoServer } from './demo-server';

export type Connection = { baseURL: string; model: string; apiKey: string; close(): Promise<void> };

export async function connect(): Promise<Connection> {
  const baseURL = process.env.CARBON_TRACE_BASE_URL;
  const model = process.env.CARBON_TRACE_MODEL ?? 'demo-model';
  const apiKey = process.env.CARBON_TRACE_API_KEY ?? 'not-needed';
  if (baseURL) return { baseURL, model, apiKey, close: async () => {} };
  const server = await startDemoServer();
  return { baseURL: server.baseURL, model, apiKey, close: () => server.close() };
}
