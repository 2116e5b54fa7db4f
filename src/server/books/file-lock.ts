import { createRequire } from 'node:module';
import { arch, constants } from 'node:os';

/**
 * Why a file could not be locked: `held` when another open file (another process, container or
 * proxy) holds its lock; `unsupported` when this platform offers no `flock(2)` to this process.
 *
 * @example
 * ```ts
 * try { lockFile(fd); } catch (error) { if (error instanceof FileLockError && error.reason === 'held') … }
 * ```
 */
export class FileLockError extends Error {
  override readonly name = 'FileLockError';
  readonly reason: 'held' | 'unsupported' | 'failed';
  constructor(reason: 'held' | 'unsupported' | 'failed', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

// flock(2)'s operations: the same numbers on Linux, macOS and the BSDs.
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

type Flock = { flock(fd: number, operation: number): number; errno(): number };
let loaded: Flock | string | undefined;

/** The C library's names to try, per platform: glibc, then musl (Alpine), then the generic name. */
function libcNames(): string[] {
  switch (process.platform) {
    case 'linux': {
      const musl = arch() === 'x64' ? 'x86_64' : arch() === 'arm64' ? 'aarch64' : arch();
      return ['libc.so.6', `libc.musl-${musl}.so.1`, 'libc.so'];
    }
    case 'darwin':
      return ['/usr/lib/libSystem.B.dylib', 'libSystem.B.dylib'];
    case 'freebsd':
      return ['libc.so.7'];
    case 'openbsd':
    case 'netbsd':
      return ['libc.so'];
    default:
      return [];
  }
}

/** `flock(2)` through koffi (an optional dependency: Node has no file locks of its own), or why not. */
function flockFunction(): Flock | string {
  if (loaded !== undefined) return loaded;
  type Koffi = typeof import('koffi');
  let koffi: Koffi;
  try {
    const required = createRequire(import.meta.url)('koffi') as Koffi & { default?: Koffi };
    koffi = required.default ?? required;
  } catch (error) {
    return (loaded = `koffi, the optional dependency that calls flock(2), could not be loaded (${(error as Error).message.split('\n')[0]}): reinstall carbon-trace with optional dependencies (npm install --include=optional)`);
  }
  const names = libcNames();
  if (names.length === 0) return (loaded = `flock(2) is not available on ${process.platform}`);
  const tried: string[] = [];
  for (const name of names) {
    try {
      const flock = koffi.load(name).func('int flock(int fd, int operation)') as (fd: number, operation: number) => number;
      return (loaded = { flock, errno: () => koffi.errno() });
    } catch (error) {
      tried.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return (loaded = `the C library could not be loaded for flock(2) (${tried.join('; ')})`);
}

/**
 * Takes an exclusive advisory lock on an open file (`flock(2)`, never waiting), which the kernel
 * holds for the open file itself and lets go when it is closed, whoever closes it and however the
 * process ends (`kill -9` included). So it holds across processes, PID namespaces (containers that
 * share a volume) and every name of the file (symbolic links, hard links, relative paths), and on
 * NFS where the client maps it to NFS locks (Linux does, unless mounted with `nolock`). Returns
 * its release.
 *
 * @throws {FileLockError} `held` when another open file holds the lock; `unsupported` when flock
 * cannot be called here.
 *
 * @example
 * ```ts
 * const fd = openSync('ledger.csv', 'a+');
 * const release = lockFile(fd);
 * ```
 */
export function lockFile(fd: number): () => void {
  const libc = flockFunction();
  if (typeof libc === 'string') throw new FileLockError('unsupported', libc);
  if (libc.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const errno = libc.errno();
    if (errno === constants.errno.EWOULDBLOCK || errno === constants.errno.EAGAIN) throw new FileLockError('held', 'another open file holds its lock');
    const name = Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
    throw new FileLockError('failed', `flock(2) failed: ${name}${name === 'ENOLCK' ? ' (a network filesystem without locks: mount it with locking, or keep the ledger on a local disk)' : ''}`);
  }
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    libc.flock(fd, LOCK_UN);
  };
}
