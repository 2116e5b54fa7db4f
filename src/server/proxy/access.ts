import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/**
 * The admin token without the whitespace a secret file leaves around it; one that is only
 * whitespace is no token, and is refused.
 *
 * @example
 * ```ts
 * checkedAdminToken('s3cret\n'); // 's3cret'
 * ```
 */
export function checkedAdminToken(token: string): string {
  const trimmed = token.trim();
  if (trimmed === '') throw new TypeError('the admin token is empty (or only whitespace): give a real token (e.g. openssl rand -hex 32), or none to leave the books open');
  if (/\s/.test(trimmed)) throw new TypeError('the admin token holds whitespace, which an Authorization: Bearer header cannot carry');
  return trimmed;
}

/**
 * Whether a request may read the books: it brings the admin token (`Authorization: Bearer`, or
 * `?token=` for the dashboard), compared in constant time; anyone may when there is no token.
 *
 * @example
 * ```ts
 * const allowed = adminCheck('s3cret');
 * allowed(req, '/carbon/stats?token=s3cret'); // true
 * ```
 */
export function adminCheck(adminToken: string | undefined): (req: IncomingMessage, target: string) => boolean {
  if (adminToken === undefined) return () => true;
  const expected = createHash('sha256').update(adminToken).digest();
  return (req, target) => {
    const given = bearerToken(req.headers.authorization) ?? new URLSearchParams(target.slice(target.indexOf('?') + 1)).get('token') ?? '';
    return timingSafeEqual(createHash('sha256').update(given).digest(), expected);
  };
}

/**
 * How API keys become the one-way ids the books keep: HMAC-SHA-256 of the bearer token with a
 * secret, first 12 hex digits. Without the secret an id cannot be checked against guesses, so
 * the public /metrics gives nothing away; with the same secret every proxy of a fleet gives the
 * same id for the same key.
 *
 * @example
 * ```ts
 * createKeyIds('fleet secret').of('Bearer sk-123'); // 'key:…' (12 hex)
 * ```
 */
export function createKeyIds(secret: Buffer | string): { of(authorization: string | undefined): string | undefined } {
  return {
    of(authorization) {
      const token = bearerToken(authorization);
      return token === undefined ? undefined : `key:${createHmac('sha256', secret).update(token).digest('hex').slice(0, 12)}`;
    },
  };
}

/** The token of an `Authorization: Bearer …` header. */
function bearerToken(authorization: string | undefined): string | undefined {
  return /^\s*bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
}

/**
 * The names of a `Host` header this proxy answers to (see `allowedHosts`): IP addresses,
 * `localhost` and `*.localhost` always, and the names and domains (a leading dot) given.
 *
 * @example
 * ```ts
 * hostCheck(['.example.org'])('api.example.org:8787'); // true
 * ```
 */
export function hostCheck(allowed: readonly string[] | true | undefined): (host: string) => boolean {
  if (allowed === true) return () => true;
  const names = new Set<string>();
  const domains: string[] = [];
  for (const entry of allowed ?? []) {
    const name = entry.trim().toLowerCase().replace(/\.$/, '');
    if (name === '*') return () => true;
    if (name.startsWith('.')) domains.push(name);
    else if (name !== '') names.add(name);
  }
  return (host) => {
    const name = hostName(host);
    if (name === undefined) return false;
    if (isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || names.has(name)) return true;
    return domains.some((domain) => name.endsWith(domain) || name === domain.slice(1));
  };
}

/** The name of a `Host` header (lower case, without its port or a trailing dot); `undefined` when it is not one. */
function hostName(host: string): string | undefined {
  const value = host.trim().toLowerCase();
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(value);
  if (!match) return undefined;
  const name = match[1] ?? match[2]!.replace(/\.$/, '');
  return name === '' ? undefined : name;
}
