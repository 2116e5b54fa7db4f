import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'ai-sdk/index': 'src/ai-sdk/index.ts',
    'langchain/index': 'src/langchain/index.ts',
    'otel/index': 'src/otel/index.ts',
    'grid/index': 'src/grid/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2022',
  // Core and ai-sdk must run on edge runtimes: nothing Node-specific may be bundled in.
  platform: 'neutral',
  splitting: true,
  treeshake: true,
});
