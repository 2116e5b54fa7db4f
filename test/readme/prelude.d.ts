/**
 * What README snippets take as given: the values a reader already has in their own code. Each
 * snippet is compiled as a module, so its own imports and declarations shadow these.
 */
declare const graph: { invoke(input: unknown, options?: import('@langchain/core/runnables').RunnableConfig): Promise<unknown> };
declare const messages: import('@langchain/core/messages').BaseMessage[];
declare const model: import('ai').LanguageModel;
declare const tools: import('ai').ToolSet;
declare const tracker: import('carbon-trace').CarbonTracker;
declare const metrics: import('carbon-trace').CarbonMetrics;
declare const generateText: typeof import('ai').generateText;
declare const stepCountIs: typeof import('ai').stepCountIs;
declare const carbonTraceMiddleware: typeof import('carbon-trace/ai-sdk').carbonTraceMiddleware;
declare const CarbonTraceCallbackHandler: typeof import('carbon-trace/langchain').CarbonTraceCallbackHandler;
