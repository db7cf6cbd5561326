// The page: model and module pickers, the live loss plot and stats (the CNN's test accuracy
// too), sampled names or the test digits as pictures with their predictions, the graph picture
// (zoomable: graphview.mjs), and the DSL source beside the gradient code graphc emitted for it. Training runs in a
// module worker (worker.mjs). `window.graphcDemo` mirrors the run's state (the browser tests read
// it). URL parameters: ?model=makemore&backend=wasm&steps=N&autostart=1&evalEvery=N.
import { MODELS } from './models.mjs';
import { GraphView } from './graphview.mjs';
import { LossPlot } from './plot.mjs';

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const state = (globalThis.graphcDemo = { status: 'idle', info: '', step: 0, steps: 0, loss: NaN, rate: NaN, train: NaN, dev: NaN, samples: [], error: null, evals: [] });
const plot = new LossPlot($('plot'));
const graph = new GraphView({
  img: $('graph'),
  box: $('graph-box'),
  level: $('zoom-level'),
  full: $('graph-full'),
  buttons: { in: $('zoom-in'), out: $('zoom-out'), fit: $('zoom-fit'), one: $('zoom-1') },
});
state.graph = graph;
let worker = null;

function badges() {
  const items = [
    ['cross-origin isolated', globalThis.crossOriginIsolated === true],
    ['SharedArrayBuffer', typeof SharedArrayBuffer === 'function'],
    ['WebAssembly', typeof WebAssembly === 'object'],
    ['WebGPU', 'gpu' in navigator],
    [`${navigator.hardwareConcurrency ?? '?'} threads`, true],
  ];
  $('badges').replaceChildren(
    ...items.map(([label, ok]) => Object.assign(document.createElement('span'), { className: `badge ${ok ? 'ok' : 'no'}`, textContent: `${ok ? '✓' : '✗'} ${label}` })),
  );
}

const escape = (s) => s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]);
const KEYWORDS = /\b(const|let|for|function|return|export|import|from|if|else|new|default|interface|type|true|false|of)\b/g;

/** Code as numbered lines: comments dimmed, keywords and numbers coloured, `file.ts:N` links to the source pane. */
function renderCode(pre, text, { firstLine = 1, linkFile } = {}) {
  pre.replaceChildren();
  text.split('\n').forEach((line, i) => {
    const div = document.createElement('div');
    div.className = 'line';
    div.dataset.line = String(firstLine + i);
    const cut = line.indexOf('//');
    const code = cut < 0 ? line : line.slice(0, cut);
    const comment = cut < 0 ? '' : line.slice(cut);
    let html = escape(code)
      .replace(/('[^']*'|"[^"]*"|`[^`]*`)/g, '<span class="str">$1</span>')
      .replace(KEYWORDS, '<span class="kw">$1</span>')
      .replace(/(?<![\w.])(\d+(\.\d+)?(e-?\d+)?)\b/g, '<span class="num">$1</span>');
    if (comment) {
      let c = escape(comment);
      if (linkFile) c = c.replace(new RegExp(`${linkFile.replace('.', '\\.')}:(\\d+)`, 'g'), '<a class="ref" data-ref="$1">$&</a>');
      html += `<span class="com">${c}</span>`;
    }
    div.innerHTML = `<span class="ln">${firstLine + i}</span>${html || ' '}`;
    pre.append(div);
  });
}

/** Scrolls a code pane to its first line that matches `re`. */
function scrollTo(pre, re) {
  const el = [...pre.querySelectorAll('.line')].find((l) => re.test(l.textContent.replace(/^\d+/, '')));
  if (el) pre.scrollTop = el.offsetTop - 8;
}

function highlightSource(line) {
  const pre = $('source');
  pre.querySelectorAll('.line.hl').forEach((el) => el.classList.remove('hl'));
  const el = pre.querySelector(`.line[data-line="${line}"]`);
  if (!el) return;
  el.classList.add('hl');
  pre.scrollTop = el.offsetTop - pre.clientHeight / 3; // the pane is the lines' offset parent
}

async function showModel(id) {
  const m = MODELS[id];
  $('model-title').textContent = `The model: ${m.title}`;
  $('model-blurb').textContent = m.blurb;
  // what the evaluation reports (makemore: calibrated training loss, dev loss, sampled names)
  const labels = { train: 'train (calibrated)', dev: 'dev', trainLegend: 'training set', devLegend: 'dev set (batchnorm calibrated on the training set)', samples: 'Sampled names', ...m.labels };
  $('k-train').textContent = labels.train;
  $('k-dev').textContent = labels.dev;
  $('l-train').textContent = labels.trainLegend;
  $('l-dev').textContent = labels.devLegend;
  $('samples-title').textContent = labels.samples;
  graph.show(m.graph);
  $('acc').hidden = !m.accuracy;
  $('source-label').textContent = m.source.label;
  $('code-label').textContent = m.code.label;
  $('steps').value = query.get('steps') ?? String(m.steps);
  const backend = $('backend');
  backend.replaceChildren(...Object.entries(m.modules).map(([k, v]) => new Option(v.label, k)));
  if (query.get('backend') && m.modules[query.get('backend')]) backend.value = query.get('backend');
  const [source, code] = await Promise.all([m.source.url, m.code.url].map((u) => fetch(u).then((r) => r.text())));
  renderCode($('source'), source.replace(/\n$/, ''));
  // the gradient code: the module's valueAndGrad, as emitted
  const start = code.indexOf(m.code.from);
  const end = code.indexOf('\n}\n', start);
  const firstLine = code.slice(0, start).split('\n').length;
  renderCode($('code'), start < 0 ? code : code.slice(start, end + 2), { firstLine: start < 0 ? 1 : firstLine, linkFile: m.source.label.split('/').pop() });
  if (m.source.from) scrollTo($('source'), new RegExp(`^\\s*${m.source.from}`)); // the model itself, past the imports and types
  scrollTo($('code'), /^\s*\/\/ d/); // the first gradient, past the argument checks and the arrays
}

/** The first 30 test digits as pictures (28×28 grey bytes each), captioned `label → predicted` (✗ in red when wrong). */
function showDigits(captions, bytes) {
  const side = 28;
  const items = captions.slice(0, 30).map((caption, i) => {
    const canvas = Object.assign(document.createElement('canvas'), { width: side, height: side });
    const img = new ImageData(side, side);
    for (let j = 0; j < side * side; j++) {
      const v = bytes[i * side * side + j];
      img.data.set([v, v, v, 255], j * 4);
    }
    canvas.getContext('2d').putImageData(img, 0, 0);
    const li = document.createElement('li');
    li.className = caption.endsWith('✗') ? 'wrong' : 'right';
    li.append(canvas, Object.assign(document.createElement('span'), { textContent: caption }));
    return li;
  });
  $('samples').classList.add('digits');
  $('samples').replaceChildren(...items);
}

function setStatus(status, text) {
  state.status = status;
  $('status').textContent = text;
  $('status').dataset.status = status;
  document.documentElement.dataset.status = status;
}

function start() {
  worker?.terminate();
  const model = $('model').value;
  const backend = $('backend').value;
  const steps = Math.max(100, Number($('steps').value) || MODELS[model].steps);
  Object.assign(state, { step: 0, steps, loss: NaN, rate: NaN, train: NaN, dev: NaN, samples: [], error: null, evals: [], info: '', backend, model });
  plot.reset(steps);
  for (const id of ['s-rate', 's-loss', 's-train', 's-dev', 's-acc']) $(id).textContent = '–';
  setStatus('loading', `loading the ${MODELS[model].modules[backend].label} module…`);
  worker = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module' });
  worker.onmessage = ({ data: msg }) => onMessage(msg);
  worker.onerror = (e) => onMessage({ type: 'error', message: e.message });
  worker.postMessage({ cmd: 'start', model, backend, steps, evalEvery: Math.max(1, Number(query.get('evalEvery') ?? MODELS[model].evalEvery ?? 2500)) });
  $('pause').disabled = false;
  $('pause').textContent = 'Pause';
  $('start').textContent = 'Restart';
}

function onMessage(msg) {
  if (msg.type === 'ready') {
    state.info = msg.info;
    setStatus('training', `training · ${msg.info}`);
  }
  else if (msg.type === 'progress') {
    Object.assign(state, { step: msg.step, loss: msg.loss, rate: msg.meanRate });
    plot.add(msg.points);
    $('s-step').innerHTML = `${msg.step.toLocaleString('en')}<small> / ${msg.steps.toLocaleString('en')}</small>`;
    $('s-rate').textContent = Math.round(msg.rate).toLocaleString('en');
    $('s-loss').textContent = msg.loss.toFixed(3);
  } else if (msg.type === 'eval') {
    Object.assign(state, { train: msg.train, dev: msg.dev, samples: msg.samples, ...(msg.accuracy === undefined ? {} : { accuracy: msg.accuracy }) });
    state.evals.push({ step: msg.step, train: msg.train, dev: msg.dev, ms: msg.ms });
    plot.addEval(msg.step, msg.train, msg.dev);
    $('s-train').textContent = msg.train.toFixed(4);
    $('s-dev').textContent = msg.dev.toFixed(4);
    $('sample-step').textContent = `drawn from the network at step ${msg.step.toLocaleString('en')}`;
    if (msg.accuracy !== undefined) $('s-acc').textContent = `${(msg.accuracy * 100).toFixed(1)}%`;
    if (msg.digits) showDigits(msg.samples, msg.digits);
    else {
      $('samples').classList.remove('digits');
      $('samples').replaceChildren(...msg.samples.slice(0, 24).map((n) => Object.assign(document.createElement('li'), { textContent: n || '·' })));
    }
  } else if (msg.type === 'done') {
    setStatus('done', `${msg.stopped ? 'stopped' : 'done'} after ${msg.step.toLocaleString('en')} steps · ${Math.round(state.rate).toLocaleString('en')} steps/s on average`);
    $('pause').disabled = true;
  } else if (msg.type === 'error') {
    state.error = msg.message;
    setStatus('error', `error: ${msg.message.split('\n')[0]}`);
    console.error(msg.message);
  }
}

$('model').replaceChildren(...Object.entries(MODELS).map(([k, v]) => new Option(v.title, k)));
if (query.get('model') && MODELS[query.get('model')]) $('model').value = query.get('model');
$('model').onchange = () => showModel($('model').value);
$('start').onclick = start;
$('pause').onclick = () => {
  const paused = $('pause').textContent === 'Resume';
  worker?.postMessage({ cmd: paused ? 'resume' : 'pause' });
  $('pause').textContent = paused ? 'Pause' : 'Resume';
  setStatus(paused ? 'training' : 'paused', paused ? 'training' : 'paused');
};
$('code').addEventListener('click', (e) => {
  const ref = e.target.closest('.ref');
  if (ref) highlightSource(Number(ref.dataset.ref));
});
badges();
await showModel($('model').value);
setStatus('idle', 'ready: press Train');
if (query.get('autostart') === '1') start();
