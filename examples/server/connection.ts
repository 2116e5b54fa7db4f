/**
 * Where the examples send their requests: a real server when CARBON_TRACE_BASE_URL is set (with
 * CARBON_TRACE_MODEL and, if needed, CARBON_TRACE_API_KEY), else the toy model behind a real
 * carbon-trace proxy — the product itself, started for the example and stopped after it.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createCarbonProxy, createEnergyMeter, type CarbonProxy, type EnergyMeter } from 'carbon-trace/server';
import { startToyModel } from './toy-model';

export type Connection = {
  baseURL: string;
  model: string;
  apiKey: string;
  /** The proxy's own address (dashboard at /carbon), when the example started one. */
  proxyURL?: string;
  /** The toy model's own /v1, not through the proxy: it answers with no trace, like an API provider. */
  directURL?: string;
  proxy?: CarbonProxy;
  meter?: EnergyMeter;
  close(): Promise<void>;
};

/**
 * The toy model behind `carbon-trace proxy`, both on loopback.
 *
 * @example
 * ```ts
 * const { baseURL, close } = await startProxiedToyModel({ gridIntensityGPerKwh: 56 });
 * ```
 */
export async function startProxiedToyModel(options: { gridIntensityGPerKwh?: number; port?: number } = {}): Promise<Required<Omit<Connection, 'apiKey'>> & { apiKey: string }> {
  const model = await startToyModel();
  const meter = createEnergyMeter({ sources: 'auto', sampleIntervalMs: 100, onWarning: false });
  const gridIntensity = options.gridIntensityGPerKwh === undefined ? undefined : { gCo2PerKwh: options.gridIntensityGPerKwh, source: 'given with --grid-intensity' };
  const proxy = createCarbonProxy({ upstream: model.origin, meter, ...(gridIntensity ? { gridIntensity } : {}), onWarning: false });
  const server = proxy.server;
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  await meter.ready;
  const proxyURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    baseURL: `${proxyURL}/v1`,
    model: 'toy-model',
    apiKey: 'not-needed',
    proxyURL,
    directURL: model.baseURL,
    proxy,
    meter,
    close: async () => {
      await proxy.close();
      await meter.close();
      await model.close();
    },
  };
}

export async function connect(): Promise<Connection> {
  const baseURL = process.env.CARBON_TRACE_BASE_URL;
  const model = process.env.CARBON_TRACE_MODEL ?? 'toy-model';
  const apiKey = process.env.CARBON_TRACE_API_KEY ?? 'not-needed';
  if (baseURL) return { baseURL, model, apiKey, close: async () => {} };
  return startProxiedToyModel();
}
