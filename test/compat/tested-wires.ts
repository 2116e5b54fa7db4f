/**
 * Every client × wire the suite carries a measured number over, where the number lands, and the
 * test that shows it: the source of the README's "Which calls carry the number" table, which
 * test/compat/wire-table.test.ts checks against this list and the test files.
 */
export type TestedWire = {
  /** As the README's table names the client. */
  client: string;
  /** The wire, as the README names it. */
  wire: string;
  /** Where the user finds the number. */
  where: string;
  /** The test file that carries it end to end with that client. */
  testFile: string;
  /** Texts that file must contain to be running that client on that wire. */
  proof: string[];
};

export const TESTED_WIRES: TestedWire[] = [
  {
    client: 'AI SDK: `@ai-sdk/openai-compatible`, `openai.chat()`',
    wire: 'chat completions',
    where: '`providerMetadata.codecarbon`',
    testFile: 'test/ai-sdk/middleware.test.ts',
    proof: ['describe.each(MAJORS)', "await import('@ai-sdk/openai')"],
  },
  {
    client: 'AI SDK: `openai()` of `@ai-sdk/openai`',
    wire: 'Responses API',
    where: '`providerMetadata.codecarbon`',
    testFile: 'test/ai-sdk/wires.test.ts',
    proof: ["from '@ai-sdk/openai'", "wirePath: '/v1/responses'"],
  },
  {
    client: 'AI SDK: `@ai-sdk/anthropic`',
    wire: 'Anthropic Messages',
    where: '`providerMetadata.codecarbon`',
    testFile: 'test/ai-sdk/wires.test.ts',
    proof: ["from '@ai-sdk/anthropic'", "wirePath: '/v1/messages'"],
  },
  {
    client: 'AI SDK: `ollama-ai-provider-v2`',
    wire: 'Ollama `/api/chat`',
    where: '`providerMetadata.codecarbon`; streams need `createOllama({ fetch: carbon.fetch })`',
    testFile: 'test/ai-sdk/wires.test.ts',
    proof: ["from 'ollama-ai-provider-v2'", "wirePath: '/api/chat'", 'fetch: carbon.fetch'],
  },
  {
    client: 'AI SDK: `embed`, `embedMany` (`wrapEmbeddingModel`)',
    wire: 'embeddings (OpenAI, Ollama `/api/embed`)',
    where: '`result.providerMetadata.codecarbon` (an `embedMany` of several requests: their sum)',
    testFile: 'test/ai-sdk/embedding-middleware.test.ts',
    proof: ['wrapEmbeddingModel(', 'embedMany(', "from 'ollama-ai-provider-v2'"],
  },
  {
    client: 'LangChain: `ChatOpenAI`, LangGraph',
    wire: 'chat completions',
    where: '`message.response_metadata.codecarbon`',
    testFile: 'test/langchain/handler.test.ts',
    proof: ["from '@langchain/openai'", 'handler.fetch'],
  },
  {
    client: 'LangChain: `ChatOpenAI({ useResponsesApi: true })`',
    wire: 'Responses API',
    where: '`message.response_metadata.codecarbon`',
    testFile: 'test/langchain/wires.test.ts',
    proof: ['useResponsesApi: true'],
  },
  {
    client: 'LangChain: `ChatOllama`',
    wire: 'Ollama `/api/chat`',
    where: '`message.response_metadata.codecarbon`',
    testFile: 'test/langchain/wires.test.ts',
    proof: ["from '@langchain/ollama'", 'new ChatOllama('],
  },
  {
    client: 'LangChain: `ChatAnthropic`',
    wire: 'Anthropic Messages',
    where: '`message.response_metadata.codecarbon`',
    testFile: 'test/langchain/wires.test.ts',
    proof: ["from '@langchain/anthropic'", 'new ChatAnthropic('],
  },
  {
    client: 'LangChain: `OpenAIEmbeddings`, `OllamaEmbeddings`',
    wire: 'embeddings',
    where: "`onMetrics(m, { kind: 'embedding' })`, `handler.totals()`",
    testFile: 'test/langchain/wires.test.ts',
    proof: ['new OpenAIEmbeddings(', 'new OllamaEmbeddings('],
  },
  {
    client: '`openai` SDK: `chat.completions`, `responses`, `embeddings`',
    wire: 'chat completions, Responses API, embeddings',
    where: '`extractCarbonMetrics(response)`; streams: `createCarbonTraceAccumulator()`',
    testFile: 'test/compat/openai-sdk.test.ts',
    proof: ['chat.completions.create(', 'responses.create(', 'embeddings.create('],
  },
  {
    client: 'any HTTP client, through the proxy',
    wire: 'TGI `/generate`, `/generate_stream`; llama.cpp `/completion`; `/v1/rerank`, `/v1/score`',
    where: '`x_carbon_trace` of the body, or of the last event → `extractCarbonMetrics`',
    testFile: 'test/proxy/wires.test.ts',
    proof: ["'/generate'", "'/generate_stream'", "'/completion'", "'/v1/rerank'", "'/v1/score'"],
  },
  {
    client: 'any HTTP client, through the proxy',
    wire: "TEI's `/embed`, `/rerank` (a bare JSON array)",
    where: 'no place for it in the body: booked in `/carbon/stats`, `/metrics` and the ledger only',
    testFile: 'test/proxy/wires.test.ts',
    proof: ["'/embed'", 'bare: true'],
  },
];
