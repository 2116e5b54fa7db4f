/**
 * Every client the suite runs carbon-trace with, and where: the source of the README's
 * compatibility table, which test/compat/compat-table.test.ts checks against this list, the
 * installed versions and the test files. Adding a major to MAJORS, or a client to a test, without
 * its row (or the reverse) fails that test.
 */
import { MAJORS } from '../ai-sdk/majors';

/** Which Node.js gets this version from a plain `npm install` today ('—': an older major you pin). */
export type InstalledOn = 'Node 22+' | 'Node 20' | 'Node 20 and 22+' | '—';

export type TestedClient = {
  /** As the README's table names it. */
  client: string;
  /** The specifier the tests import it by: its name, or an npm alias for an older major. */
  package: string;
  /** What it runs with in that test, by the specifier the test imports it by. */
  with?: { name: string; package: string };
  installedOn: InstalledOn;
  /** The test file that runs it. */
  testFile: string;
  /** Text that file must contain to be running it (default: an import of `package`). */
  proof?: string;
};

// What `npm install ai @ai-sdk/openai-compatible` gives per Node (ai@7 declares Node ≥ 22).
const AI_MAJOR_INSTALLED_ON: Record<string, InstalledOn> = { 'ai@5': '—', 'ai@6': 'Node 20', 'ai@7': 'Node 22+' };

export const TESTED_CLIENTS: TestedClient[] = [
  ...MAJORS.map(
    (major): TestedClient => ({
      client: '`@ai-sdk/openai-compatible`',
      package: major.packages.provider,
      with: { name: 'ai', package: major.packages.ai },
      installedOn: AI_MAJOR_INSTALLED_ON[major.label] ?? '—',
      testFile: 'test/ai-sdk/middleware.test.ts',
      proof: 'describe.each(MAJORS)',
    }),
  ),
  {
    client: '`@ai-sdk/openai` `.chat()`',
    package: '@ai-sdk/openai',
    with: { name: 'ai', package: 'ai' },
    installedOn: 'Node 22+',
    testFile: 'test/ai-sdk/middleware.test.ts',
    proof: "await import('@ai-sdk/openai')",
  },
  {
    client: '`@ai-sdk/openai` `.chat()`',
    package: 'ai-sdk-openai-v3',
    with: { name: 'ai', package: 'ai-v6' },
    installedOn: 'Node 20',
    testFile: 'test/compat/node20.test.ts',
  },
  {
    client: '`@ai-sdk/openai` `openai()` (Responses)',
    package: '@ai-sdk/openai',
    with: { name: 'ai', package: 'ai' },
    installedOn: 'Node 22+',
    testFile: 'test/ai-sdk/wires.test.ts',
  },
  {
    client: '`@ai-sdk/openai` `openai()` (Responses)',
    package: 'ai-sdk-openai-v3',
    with: { name: 'ai', package: 'ai-v6' },
    installedOn: 'Node 20',
    testFile: 'test/ai-sdk/wires.test.ts',
  },
  {
    client: '`@ai-sdk/anthropic`',
    package: '@ai-sdk/anthropic',
    with: { name: 'ai', package: 'ai' },
    installedOn: 'Node 22+',
    testFile: 'test/ai-sdk/wires.test.ts',
  },
  {
    client: '`ollama-ai-provider-v2`',
    package: 'ollama-ai-provider-v2',
    with: { name: 'ai', package: 'ai' },
    installedOn: 'Node 22+',
    testFile: 'test/ai-sdk/wires.test.ts',
  },
  {
    client: '`@langchain/openai` `ChatOpenAI`',
    package: '@langchain/openai',
    with: { name: '@langchain/core', package: '@langchain/core' },
    installedOn: 'Node 22+',
    testFile: 'test/langchain/handler.test.ts',
  },
  {
    client: '`@langchain/openai` `ChatOpenAI`',
    package: 'langchain-openai-v15',
    with: { name: '@langchain/core', package: '@langchain/core' },
    installedOn: 'Node 20',
    testFile: 'test/compat/node20.test.ts',
  },
  {
    client: '`@langchain/langgraph`',
    package: '@langchain/langgraph',
    with: { name: '@langchain/openai', package: '@langchain/openai' },
    installedOn: 'Node 20 and 22+',
    testFile: 'test/langchain/handler.test.ts',
  },
  {
    client: '`@langchain/ollama` `ChatOllama`, `OllamaEmbeddings`',
    package: '@langchain/ollama',
    with: { name: '@langchain/core', package: '@langchain/core' },
    installedOn: 'Node 20 and 22+',
    testFile: 'test/langchain/wires.test.ts',
  },
  {
    client: '`@langchain/anthropic` `ChatAnthropic`',
    package: '@langchain/anthropic',
    with: { name: '@langchain/core', package: '@langchain/core' },
    installedOn: 'Node 20 and 22+',
    testFile: 'test/langchain/wires.test.ts',
  },
  {
    client: '`openai` (plain SDK)',
    package: 'openai',
    installedOn: 'Node 22+',
    testFile: 'test/compat/openai-sdk.test.ts',
  },
];

export { AI_MAJOR_INSTALLED_ON };
