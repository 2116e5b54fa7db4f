import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup/no-network.ts'],
    // Prints which tests did not run (a program missing) and fails on a child process left running.
    globalSetup: ['test/setup/global.ts'],
    // Two cores: real HTTP tests over loopback are I/O-bound, forks keep them isolated.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // ChatOpenAI with streaming: true tries to download a tokenizer, which the no-network setup
    // refuses at once; its fallback warning is expected noise, not a finding.
    onConsoleLog: (log) => !log.includes('Failed to calculate number of tokens'),
  },
});
