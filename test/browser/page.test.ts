// The page of npm run demo:web (scripts/web/): built as demo:web builds it, served cross-origin
// isolated, it trains makemore with the wasm module to a low loss, fetches nothing from outside
// the server, and shows the plot, the samples, the graph and the code; its screenshot goes to
// test-results/browser/ (CI keeps it).

import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
// @ts-expect-error: plain ESM without type declarations
import { buildWeb } from '../../scripts/web/build.mjs';
import { launch, OUTPUT, type Session } from './chromium.js';

interface DemoState {
  status: string;
  /** What the task says when it is ready (the data, and the threads of a threaded module). */
  info: string;
  /** The CNN's accuracy on the held-out digits at the last evaluation. */
  accuracy?: number;
  step: number;
  steps: number;
  rate: number;
  train: number;
  dev: number;
  samples: string[];
  error: string | null;
  evals: { step: number; train: number; dev: number }[];
}

let s: Session;
beforeAll(async () => {
  buildWeb({ log: () => {} });
  s = await launch();
});
afterAll(async () => {
  await s?.close();
});

it('trains makemore with the wasm module to a dev loss below 2.2 in 30,000 steps, offline and cross-origin isolated', async () => {
  const { page, errors, outside } = await s.open('/?autostart=1&backend=wasm', { width: 1280, height: 900 });
  await page.waitForFunction(() => ['done', 'error'].includes((globalThis as unknown as { graphcDemo?: DemoState }).graphcDemo?.status ?? ''), null, {
    timeout: 150_000,
  });
  const st = await page.evaluate(() => (globalThis as unknown as { graphcDemo: DemoState }).graphcDemo);
  await page.screenshot({ path: path.join(OUTPUT, 'demo-page.png'), fullPage: true });
  expect(st.error).toBeNull();
  expect(st.status).toBe('done');
  expect(st.step).toBe(30000);
  // `npm run demo` (the flat module, in Node, same seed) ends at train 2.1095, dev 2.1393
  expect(st.evals[0]!.dev).toBeGreaterThan(3);
  expect(st.dev).toBeLessThan(2.2);
  expect(st.train).toBeLessThan(2.2);
  expect(st.rate).toBeGreaterThan(0);
  expect(st.samples.length).toBe(32);
  expect(st.samples.every((n) => /^[a-z]*$/.test(n))).toBe(true);
  // what the page shows
  expect(await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated)).toBe(true);
  expect(await page.locator('#samples li').count()).toBeGreaterThan(10);
  expect(await page.locator('#graph').evaluate((img: { naturalWidth: number }) => img.naturalWidth)).toBeGreaterThan(100);
  expect(await page.locator('#source').textContent()).toContain("const h = hpreact.tanh();");
  expect(await page.locator('#code').textContent()).toContain('export function valueAndGrad');
  expect(await page.locator('#code').textContent()).toContain("dhpreact = dh * (1 - h²)");
  expect(await page.locator('#s-dev').textContent()).toBe(st.dev.toFixed(4));
  expect(outside).toEqual([]);
  expect(errors).toEqual([]);
});

it('trains makemore with the threaded wasm module (create({ threads })) under cross-origin isolation', async () => {
  const { page, errors, outside } = await s.open('/?autostart=1&backend=threads&steps=3000&evalEvery=3000', { width: 1280, height: 900 });
  await page.waitForFunction(() => ['done', 'error'].includes((globalThis as unknown as { graphcDemo?: DemoState }).graphcDemo?.status ?? ''), null, {
    timeout: 60_000,
  });
  const st = await page.evaluate(() => (globalThis as unknown as { graphcDemo: DemoState }).graphcDemo);
  expect(st.error).toBeNull();
  expect(st.status).toBe('done');
  expect(st.step).toBe(3000);
  // the instance runs on the page's threads (what the task reported when it was ready)
  expect(st.info).toMatch(/, [2-4] threads$/);
  // 3,000 steps of SGD at 0.1, then 0.01: from about 3.3 to below 2.6
  expect(st.evals[0]!.dev).toBeGreaterThan(3);
  expect(st.dev).toBeLessThan(2.6);
  expect(outside).toEqual([]);
  expect(errors).toEqual([]);
});

it('trains the CNN on MNIST digits with the wasm module (compiled Adam) to over 90% held-out accuracy in 600 steps', async () => {
  const { page, errors, outside } = await s.open('/?model=cnn&autostart=1&backend=wasm&steps=600&evalEvery=600', { width: 1280, height: 900 });
  await page.waitForFunction(() => ['done', 'error'].includes((globalThis as unknown as { graphcDemo?: DemoState }).graphcDemo?.status ?? ''), null, {
    timeout: 120_000,
  });
  const st = await page.evaluate(() => (globalThis as unknown as { graphcDemo: DemoState }).graphcDemo);
  await page.screenshot({ path: path.join(OUTPUT, 'demo-page-cnn.png'), fullPage: true });
  expect(st.error).toBeNull();
  expect(st.status).toBe('done');
  expect(st.step).toBe(600);
  expect(st.info).toBe('10000 digits: 7952 training, 2048 held out');
  // untrained: chance (a loss near ln 10 = 2.30); trained: most digits right
  expect(st.evals[0]!.dev).toBeGreaterThan(2);
  expect(st.accuracy).toBeGreaterThan(0.9);
  expect(st.dev).toBeLessThan(0.4);
  expect(st.samples.length).toBe(64);
  expect(st.samples.every((p) => /^[0-9] → [0-9]( ✗)?$/.test(p))).toBe(true);
  expect(await page.locator('#k-dev').textContent()).toBe('test loss');
  expect(await page.locator('#source').textContent()).toContain('g.conv2d(');
  expect(await page.locator('#code').textContent()).toContain('export function valueAndGrad');
  expect(await page.locator('#graph').evaluate((img: { naturalWidth: number }) => img.naturalWidth)).toBeGreaterThan(100);
  expect(outside).toEqual([]);
  expect(errors).toEqual([]);
});

it('serves every response with COOP same-origin and COEP require-corp, and nothing outside its folders', async () => {
  for (const p of ['scripts/web/index.html', 'web-out/generated/makemore/makemore.wasm.js', 'web-out/names.json']) {
    const r = await fetch(s.url + p);
    expect(r.status, p).toBe(200);
    expect(r.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(r.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
  }
  for (const p of ['package.json', 'scripts/web/../../package.json', 'scripts/web/%2e%2e/%2e%2e/package.json', 'node_modules/playwright-core/package.json'])
    expect((await fetch(s.url + p)).status, p).toBe(404);
});
