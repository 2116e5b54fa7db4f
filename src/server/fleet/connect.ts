/**
 * The connection to the fleet's Postgres, and the one place that says what its URL may show: the
 * password never leaves this module — not in stats, the dashboard, logs or errors.
 */
import pg from 'pg';

/**
 * The database URL as it may be shown: the password (if any) replaced by `***`. A URL that does
 * not parse is shown as its scheme only.
 *
 * @example
 * ```ts
 * redactDatabaseUrl('postgres://carbon:s3cret@db:5432/books'); // 'postgres://carbon:***@db:5432/books'
 * ```
 */
export function redactDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // A password given as a query parameter (libpq's `?password=`) is one too.
    for (const key of [...parsed.searchParams.keys()]) if (/pass/i.test(key)) parsed.searchParams.set(key, '***');
    return parsed.toString().replaceAll('%2A%2A%2A', '***');
  } catch {
    return `${url.split(':', 1)[0]}://(a URL that does not parse)`;
  }
}

/** The password of a database URL in every spelling a message may quote it in: as written, decoded, and from `?password=`. */
function passwordsOf(url: string): string[] {
  const found: string[] = [];
  const decoded = (text: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      return text;
    }
  };
  // As written, even in a URL that does not parse: between "//user:" and "@".
  const written = /(?:^|\/\/)[^:/@\s]*:([^@/\s]*)@/.exec(url)?.[1];
  if (written) found.push(written, decoded(written));
  const query = url.indexOf('?');
  if (query >= 0) {
    for (const pair of url.slice(query + 1).split('&')) {
      const [key = '', value = ''] = pair.split('=', 2);
      if (/pass/i.test(decoded(key)) && value) found.push(value, decoded(value), decoded(value.replace(/\+/g, ' ')));
    }
  }
  // Longest first: a password that begins with another is replaced whole.
  return [...new Set(found.filter((p) => p.length > 0))].sort((x, y) => y.length - x.length);
}

/**
 * An error's message with the URL's password taken out, wherever it appears (a driver may quote
 * the connection string back, as written or decoded).
 *
 * @example
 * ```ts
 * log(`fleet database: ${scrubbed(error, url)}`);
 * ```
 */
export function scrubbed(error: unknown, url: string): string {
  let message = error instanceof Error ? error.message || error.name : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && !message.includes(code)) message = `${message} (${code})`;
  message = message.split(url).join(redactDatabaseUrl(url));
  for (const secret of passwordsOf(url)) message = message.split(secret).join('***');
  return message.replace(/[\r\n]+/g, ' ').slice(0, 500);
}

/**
 * A small pool for one proxy's writes and reports. An idle connection that dies (the database
 * restarted) must not crash the proxy: its error is handed to `onError`.
 *
 * @throws when the URL is not a `postgres://` or `postgresql://` URL.
 *
 * @example
 * ```ts
 * const pool = createFleetPool(url, (error) => log(scrubbed(error, url)));
 * ```
 */
export function createFleetPool(url: string, onError: (error: unknown) => void): pg.Pool {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--db: ${redactDatabaseUrl(url)} is not a URL: give postgres://user:password@host:5432/database`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new Error(`--db: ${redactDatabaseUrl(url)} is not a postgres:// URL`);
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: 3,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // A statement stuck on a lock or a dead link must not hold the rows back forever: it fails and is tried again.
    statement_timeout: 60_000,
    query_timeout: 65_000,
    application_name: 'carbon-trace',
  });
  // An idle connection's error reaches the pool; a connection handed out has no listener of the
  // pool's while it is out, and an 'error' event nobody hears would end the proxy.
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}
