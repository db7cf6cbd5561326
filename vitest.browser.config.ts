// npm run test:browser: the tests that drive a real Chromium (test/browser/), kept out of npm test.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    alias: { graphc: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
  },
  test: {
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Node 20 has relaxed SIMD only with this flag, Chromium by default: the wasm modules' Node
    // references run the same fused multiply-adds as the page (docs/wasm.md)
    execArgv: ['--experimental-wasm-relaxed-simd'],
    // one Chromium at a time: CI has 2 cores
    fileParallelism: false,
  },
});
