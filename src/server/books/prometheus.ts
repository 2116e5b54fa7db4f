/**
 * The Prometheus text exposition format (version 0.0.4), written from the books at each scrape, so
 * that `/metrics` is a view of the same books as every other route and cannot drift from them.
 */

/** The `Content-Type` of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;

const escapeLabel = (value: string) => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (value: string) => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/**
 * Collects metric families and renders them.
 *
 * @example
 * ```ts
 * const text = new Exposition().family('up', 'gauge', 'Whether it is up').sample({}, 1).render();
 * ```
 */
export class Exposition {
  private readonly lines: string[] = [];

  /** Starts a family: its `# HELP` and `# TYPE` lines. */
  family(name: string, type: 'counter' | 'gauge', help: string): this {
    this.current = name;
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    return this;
  }

  private current = '';

  /** One sample of the current family. */
  sample(labels: Labels, value: number): this {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    this.lines.push(`${this.current}${pairs.length > 0 ? `{${pairs.join(',')}}` : ''} ${formatValue(value)}`);
    return this;
  }

  render(): string {
    return `${this.lines.join('\n')}\n`;
  }
}
