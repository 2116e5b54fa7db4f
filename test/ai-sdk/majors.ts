/**
 * The three AI SDK majors side by side, each with the openai-compatible provider of its own
 * major (npm aliases). Loosely typed on purpose: the tests run one body against all three;
 * test/ai-sdk/types-check.ts checks the types against each major separately.
 */
import * as ai5 from 'ai-v5';
import * as ai6 from 'ai-v6';
import * as ai7 from 'ai';
import { createOpenAICompatible as createV1 } from 'ai-sdk-openai-compatible-v1';
import { createOpenAICompatible as createV2 } from 'ai-sdk-openai-compatible-v2';
import { createOpenAICompatible as createV3 } from '@ai-sdk/openai-compatible';

// ai@6 prints SDK warnings to stdout; keep the test output readable.
(globalThis as Record<string, unknown>).AI_SDK_LOG_WARNINGS = false;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = any;

export type Major = {
  label: string;
  /** The specifiers this major's `ai` and openai-compatible provider are imported by (npm aliases for older majors). */
  packages: { ai: string; provider: string };
  ai: Loose;
  /** A chat model of the major's openai-compatible provider, against `baseURL`. */
  model(baseURL: string, modelId?: string): Loose;
};

export const MAJORS: Major[] = [
  { label: 'ai@5', packages: { ai: 'ai-v5', provider: 'ai-sdk-openai-compatible-v1' }, ai: ai5, model: (baseURL, id = 'fixture-model') => (createV1 as Loose)({ name: 'garden', baseURL, includeUsage: true })(id) },
  { label: 'ai@6', packages: { ai: 'ai-v6', provider: 'ai-sdk-openai-compatible-v2' }, ai: ai6, model: (baseURL, id = 'fixture-model') => (createV2 as Loose)({ name: 'garden', baseURL, includeUsage: true })(id) },
  { label: 'ai@7', packages: { ai: 'ai', provider: '@ai-sdk/openai-compatible' }, ai: ai7, model: (baseURL, id = 'fixture-model') => (createV3 as Loose)({ name: 'garden', baseURL, includeUsage: true })(id) },
];

/** Reads a stream of parts to an array. */
export async function readAll<T>(stream: ReadableStream<T> | AsyncIterable<T>): Promise<T[]> {
  const parts: T[] = [];
  for await (const part of stream as AsyncIterable<T>) parts.push(part);
  return parts;
}

/** The prompt in the provider-level shape `doGenerate` / `doStream` take. */
export const PROVIDER_PROMPT = [{ role: 'user', content: [{ type: 'text', text: 'hello' }] }];
