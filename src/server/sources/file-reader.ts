import { open, type FileHandle } from 'node:fs/promises';

/**
 * A small kernel file (a sysfs counter, /proc/stat) read again and again without blocking the
 * event loop.
 *
 * @example
 * ```ts
 * const stat: KernelFileReader = kernelFileReader('/proc/stat', 512);
 * ```
 */
export type KernelFileReader = {
  /** The file's text now (its first `maxBytes` bytes). Rejects with the fs error (`code` set). */
  read(): Promise<string>;
  close(): Promise<void>;
};

/**
 * Reads a kernel file through one handle kept open, at position 0 each time: sysfs and procfs
 * regenerate the content on a read from the start, so this sees the live value, and saves the
 * open and close of a `readFile` per read (about 4× the event-loop time, measured on /proc/stat).
 * The read itself runs on libuv's thread pool, so a slow counter (RAPL's MSR read on another
 * CPU) never holds the event loop.
 *
 * @example
 * ```ts
 * const energy = kernelFileReader('/sys/class/powercap/intel-rapl:0/energy_uj', 64);
 * const microjoules = Number(await energy.read());
 * ```
 */
export function kernelFileReader(path: string, maxBytes: number): KernelFileReader {
  let handle: Promise<FileHandle> | undefined;
  const drop = () => {
    const dropped = handle;
    handle = undefined;
    void dropped?.then((h) => h.close()).catch(() => undefined);
  };
  return {
    async read() {
      handle ??= open(path, 'r');
      const current = handle;
      try {
        const h = await current;
        // A buffer per read (from Node's pool at this size): concurrent reads never share one.
        const { bytesRead, buffer } = await h.read(Buffer.allocUnsafe(maxBytes), 0, maxBytes, 0);
        return buffer.toString('latin1', 0, bytesRead);
      } catch (error) {
        // The next read opens the file again: a permission fixed since, or a handle gone stale.
        if (handle === current) drop();
        throw error;
      }
    },
    async close() {
      const closing = handle;
      handle = undefined;
      await closing?.then((h) => h.close()).catch(() => undefined);
    },
  };
}
