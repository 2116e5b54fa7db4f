import { defineConfig, type Options } from 'tsup';

// koffi is an optional dependency: tsup leaves dependencies and peers out of the bundle by itself, not optional ones.
const shared: Options = { format: ['esm', 'cjs'], dts: true, sourcemap: true, target: 'es2022', splitting: true, treeshake: true, external: ['koffi'] };

export default defineConfig([
  {
    ...shared,
    entry: {
      index: 'src/index.ts',
      'ai-sdk/index': 'src/ai-sdk/index.ts',
      'langchain/index': 'src/langchain/index.ts',
      'otel/index': 'src/otel/index.ts',
      'grid/index': 'src/grid/index.ts',
      'estimate/index': 'src/estimate/index.ts',
    },
    // Core and ai-sdk must run on edge runtimes: nothing Node-specific may be bundled in.
    platform: 'neutral',
  },
  {
    ...shared,
    // The producer side reads /sys, spawns nvidia-smi and serves HTTP: Node only.
    entry: { 'server/index': 'src/server/index.ts' },
    platform: 'node',
  },
  {
    // The `carbon-trace` command: ESM only, run by node, never imported.
    entry: { cli: 'src/cli.ts' },
    external: ['koffi'],
    format: ['esm'],
    platform: 'node',
    target: 'es2022',
    sourcemap: true,
  },
]);
