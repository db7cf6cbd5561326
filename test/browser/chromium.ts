// The browser tests' Chromium: Debian's /usr/bin/chromium (or $CHROMIUM) driven by playwright-core
// (no browser download), headless, with WebGPU on SwiftShader; pages come from the repository's
// own server (scripts/web/server.mjs) on 127.0.0.1 with the cross-origin isolation headers.

import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
// @ts-expect-error: plain ESM without type declarations
import { startServer } from '../../scripts/web/server.mjs';
import { ROOT } from '../helpers.js';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** Where the browser tests write what CI keeps (screenshots). */
export const OUTPUT = path.join(ROOT, 'test-results', 'browser');

const BASE_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const WEBGPU_ARGS = [
  ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'],
  // where the first finds no adapter: SwiftShader's Vulkan
  ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan', '--use-vulkan=swiftshader'],
];

export interface Session {
  browser: Browser;
  /** The server's address, ending in '/'. */
  url: string;
  /** A new page at `pathname` of the server, with console errors and requests outside the server recorded. */
  open(pathname: string, viewport?: { width: number; height: number }): Promise<{ page: Page; errors: string[]; outside: string[] }>;
  close(): Promise<void>;
}

/** Starts the server and Chromium; with `webgpu`, the flag set that gives navigator.gpu an adapter. */
export async function launch({ webgpu = false } = {}): Promise<Session> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
  mkdirSync(OUTPUT, { recursive: true });
  const server = await startServer();
  const sets = webgpu ? WEBGPU_ARGS : [[]];
  let browser: Browser | undefined;
  for (const extra of sets) {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...BASE_ARGS, ...extra] });
    if (!webgpu) break;
    const page = await browser.newPage();
    await page.goto(server.url + 'test/browser/harness.html');
    const ok = await page.evaluate(async () => {
      const gpu = (globalThis as unknown as { navigator: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator.gpu;
      return Boolean(gpu && (await gpu.requestAdapter()));
    });
    await page.close();
    if (ok) break;
    await browser.close();
    browser = undefined;
  }
  if (!browser) {
    await server.close();
    throw new Error(`Chromium at ${CHROMIUM} offers no WebGPU adapter with ${WEBGPU_ARGS.map((a) => a.join(' ')).join(' nor ')}`);
  }
  const b = browser;
  return {
    browser: b,
    url: server.url,
    async open(pathname, viewport = { width: 1280, height: 900 }) {
      const page = await b.newPage({ viewport });
      const errors: string[] = [];
      const outside: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('request', (r) => {
        const u = r.url();
        if (!u.startsWith(server.url) && !u.startsWith('data:') && !u.startsWith('blob:')) outside.push(u);
      });
      await page.goto(server.url + pathname.replace(/^\//, ''));
      return { page, errors, outside };
    },
    async close() {
      await b.close();
      await server.close();
    },
  };
}

/** The harness page (test/browser/harness.mjs), loaded. */
export async function harness(s: Session): Promise<{ page: Page; errors: string[]; outside: string[] }> {
  const h = await s.open('test/browser/harness.html');
  await h.page.waitForFunction(() => (globalThis as unknown as { harnessReady?: boolean }).harnessReady === true);
  return h;
}
