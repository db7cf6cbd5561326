// A small static file server for the web page and the browser tests (Node's http, no framework).
// It serves the repository's files under a few folders, on 127.0.0.1 only, with the headers that
// make a page cross-origin isolated (COOP same-origin + COEP require-corp), which
// SharedArrayBuffer, and so a threaded wasm module's shared memory, needs.
import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import * as path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');

/** The folders a request may read, relative to the repository root. */
const SERVED = ['scripts/web/', 'scripts/demo/', 'examples/', 'generated/', 'web-out/', 'test/browser/', 'node_modules/gpu.js/dist/'];

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.wasm': 'application/wasm',
  // sources the page shows as text (a model's DSL, the emitted TypeScript, the IR)
  '.ts': 'text/plain; charset=utf-8',
  '.ir': 'text/plain; charset=utf-8',
};

/** The headers of every response: cross-origin isolation, and no caching (a rebuilt module is seen). */
export const HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

/**
 * Starts the server on 127.0.0.1:`port` (0: any free port). Returns its address and a close().
 * `/` redirects to the page, scripts/web/index.html (keeping its query).
 */
export function startServer({ port = 0, root = ROOT, log = () => {} } = {}) {
  const server = http.createServer((req, res) => {
    const send = (status, body, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { ...HEADERS, 'Content-Type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    let pathname;
    let search;
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      search = url.search;
      pathname = decodeURIComponent(url.pathname);
    } catch {
      return send(400, 'bad request\n');
    }
    if (pathname === '/') {
      res.writeHead(302, { ...HEADERS, Location: `/scripts/web/index.html${search}` });
      return res.end();
    }
    const rel = path.posix.normalize(pathname).replace(/^\/+/, '');
    if (rel.includes('\0') || rel.split('/').includes('..') || !SERVED.some((dir) => rel.startsWith(dir))) return send(404, `not found: ${pathname}\n`);
    const file = path.join(root, rel);
    let stat;
    try {
      stat = statSync(file);
    } catch {
      return send(404, `not found: ${pathname}\n`);
    }
    if (!stat.isFile()) return send(404, `not found: ${pathname}\n`);
    res.writeHead(200, { ...HEADERS, 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Content-Length': stat.size });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
    log(`${req.method} ${pathname}`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: p } = server.address();
      resolve({ url: `http://127.0.0.1:${p}/`, port: p, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}
