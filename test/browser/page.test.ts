// The page of npm run demo:web (scripts/web/): built as demo:web builds it, served cross-origin
// isolated, it trains makemore with the wasm module to a low loss, fetches nothing from outside
// the server, and shows the plot, the samples, the graph (zoomable) and the code; the CNN shows
// its test accuracy and the test digits as pictures; its screenshots go to test-results/browser/
// (CI keeps them).

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
  // the test accuracy, as a percentage of the held-out digits
  const acc = (await page.locator('#s-acc').textContent())!;
  expect(acc).toMatch(/^\d{1,3}\.\d%$/);
  expect(Number(acc.slice(0, -1))).toBeGreaterThanOrEqual(0);
  expect(Number(acc.slice(0, -1))).toBeLessThanOrEqual(100);
  expect(acc).toBe(`${(st.accuracy! * 100).toFixed(1)}%`);
  expect(await page.locator('#acc').isVisible()).toBe(true);
  // the digits as pictures: 28×28 canvases, each with ink and background, captioned as predicted
  const digits = page.locator('#samples li canvas');
  expect(await digits.count()).toBe(30);
  const ink = await digits.evaluateAll((cs: unknown[]) =>
    cs.map((c) => {
      const canvas = c as { width: number; height: number; getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } };
      const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let lit = 0;
      for (let i = 0; i < d.length; i += 4) lit += d[i]! > 128 ? 1 : 0;
      return [canvas.width, canvas.height, lit];
    }),
  );
  for (const [w, h, lit] of ink) {
    expect([w, h]).toEqual([28, 28]);
    expect(lit).toBeGreaterThan(20);
    expect(lit).toBeLessThan(28 * 28 - 100);
  }
  expect(await page.locator('#samples li span').allTextContents()).toEqual(st.samples.slice(0, 30));
  expect(outside).toEqual([]);
  expect(errors).toEqual([]);
});

it('shows the traced graph readable: at its own size in a scrolling box, zoomable, and linked full size', async () => {
  const { page, errors, outside } = await s.open('/', { width: 1280, height: 900 });
  await page.waitForFunction(() => (globalThis as unknown as { graphcDemo?: DemoState }).graphcDemo?.status === 'idle');
  const img = page.locator('#graph');
  await page.waitForFunction(() => ((globalThis as unknown as { document: { getElementById(id: string): { naturalWidth: number } } }).document.getElementById('graph')!.naturalWidth ?? 0) > 0);
  const size = () => img.evaluate((el: { naturalWidth: number; naturalHeight: number; getBoundingClientRect(): { width: number; height: number } }) => ({ nw: el.naturalWidth, nh: el.naturalHeight, w: el.getBoundingClientRect().width, h: el.getBoundingClientRect().height }));
  const zoom = () => page.evaluate(() => (globalThis as unknown as { graphcDemo: { graph: { zoom: number } } }).graphcDemo.graph.zoom);
  // shown at its own size (the makemore graph fits the box's width), not a thumbnail
  let z = await size();
  expect(z.nw).toBeGreaterThan(500);
  expect(z.w).toBeCloseTo(z.nw, 0);
  expect(await page.locator('#zoom-level').textContent()).toBe('100%');
  await page.locator('#graph-box').screenshot({ path: path.join(OUTPUT, 'demo-graph.png') });
  // fit: the whole graph in the box
  await page.click('#zoom-fit');
  z = await size();
  const box = await page.locator('#graph-box').evaluate((el: { clientWidth: number; clientHeight: number }) => ({ w: el.clientWidth, h: el.clientHeight }));
  expect(z.w).toBeLessThanOrEqual(box.w);
  expect(z.h).toBeLessThanOrEqual(box.h);
  expect(await zoom()).toBeLessThan(1);
  // a click on the picture: 1:1; the buttons zoom in and out by 1.25
  await img.click();
  expect(await zoom()).toBe(1);
  await page.click('#zoom-in');
  expect(await zoom()).toBeCloseTo(1.25, 6);
  expect((await size()).w).toBeCloseTo(z.nw * 1.25, 0);
  await page.click('#zoom-out');
  await page.click('#zoom-out');
  expect(await zoom()).toBeCloseTo(0.8, 6);
  // the full-size picture, on its own
  const href = (await page.locator('#graph-full').getAttribute('href'))!;
  expect(href).toBe('/web-out/graphs/makemore.svg');
  expect(await page.locator('#graph-full').getAttribute('target')).toBe('_blank');
  const svg = await fetch(new URL(href, s.url));
  expect(svg.status).toBe(200);
  expect(await svg.text()).toContain('<svg');
  // makemore reports no accuracy
  expect(await page.locator('#acc').isVisible()).toBe(false);
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
