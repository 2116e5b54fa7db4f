import type { Serialized } from '@langchain/core/load/serializable';

/**
 * The LangChain model classes whose HTTP client takes a fetch, told apart by how each takes it.
 *
 * @example
 * ```ts
 * const client: ChatClient = { family: 'ollama', className: 'ChatOllama' };
 * ```
 */
export type ChatClient = { family: 'openai' | 'ollama' | 'anthropic' | 'other'; className?: string };

/**
 * Which client a run's model is, from its serialized id
 * (`['langchain', 'chat_models', 'ollama', 'ChatOllama']`): its package folder, then its class.
 *
 * @example
 * ```ts
 * clientOf({ lc: 1, type: 'constructor', id: ['langchain', 'chat_models', 'ollama', 'ChatOllama'], kwargs: {} });
 * // → { family: 'ollama', className: 'ChatOllama' }
 * ```
 */
export function clientOf(llm: Serialized | undefined): ChatClient {
  const id = (llm as { id?: unknown } | undefined)?.id;
  if (!Array.isArray(id)) return { family: 'other' };
  const className = typeof id.at(-1) === 'string' ? (id.at(-1) as string) : undefined;
  // A class name alone would do for LangChain's own classes; the folder also covers subclasses.
  const folder = id.length >= 2 ? id.at(-2) : undefined;
  const family =
    folder === 'openai' || /OpenAI/.test(className ?? '')
      ? 'openai'
      : folder === 'ollama' || /Ollama/.test(className ?? '')
        ? 'ollama'
        : folder === 'anthropic' || /Anthropic/.test(className ?? '')
          ? 'anthropic'
          : 'other';
  return className === undefined ? { family } : { family, className };
}

/**
 * The line that gives this client `handler.fetch`, for warnings: each class takes it in its own
 * option (ChatOllama has no `configuration`, ChatOpenAI no `fetch`).
 *
 * @example
 * ```ts
 * fetchFixFor({ family: 'ollama', className: 'ChatOllama' }); // 'new ChatOllama({ fetch: handler.fetch })'
 * ```
 */
export function fetchFixFor(client: ChatClient | undefined): string {
  const name = client?.className !== undefined && /^[A-Za-z_$][\w$]*$/.test(client.className) ? client.className : undefined;
  switch (client?.family) {
    case 'openai':
      return `new ${name ?? 'ChatOpenAI'}({ configuration: { fetch: handler.fetch } })`;
    case 'ollama':
      return `new ${name ?? 'ChatOllama'}({ fetch: handler.fetch })`;
    case 'anthropic':
      return `new ${name ?? 'ChatAnthropic'}({ clientOptions: { fetch: handler.fetch } })`;
    default:
      return (
        "pass handler.fetch as the fetch of the model's HTTP client (ChatOpenAI: configuration: { fetch }, " +
        'ChatOllama: fetch, ChatAnthropic: clientOptions: { fetch })'
      );
  }
}
