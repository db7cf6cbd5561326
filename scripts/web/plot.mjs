// The live loss plot: a canvas with the minibatch loss (the mean of every 100 steps) as a line and
// the calibrated training and dev losses as points, step on x, loss on y.
export class LossPlot {
  constructor(canvas) {
    this.canvas = canvas;
    this.train = [];
    this.evals = [];
    this.steps = 1;
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  reset(steps) {
    this.steps = steps;
    this.train = [];
    this.evals = [];
    this.draw();
  }

  add(points) {
    this.train.push(...points);
    this.draw();
  }

  addEval(step, train, dev) {
    this.evals.push([step, train, dev]);
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const dpr = globalThis.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(c);
    const color = (name) => css.getPropertyValue(name).trim();
    const pad = { l: 44, r: 12, t: 12, b: 26 };
    const ys = [...this.train.map((p) => p[1]), ...this.evals.flatMap((e) => [e[1], e[2]])];
    const yBot = ys.length ? Math.floor(Math.min(...ys) * 4) / 4 : 2;
    const yTop = Math.max(yBot + 0.5, ys.length ? Math.ceil(Math.min(4.5, Math.max(...ys)) * 4) / 4 : 3.5);
    const X = (s) => pad.l + (s / this.steps) * (w - pad.l - pad.r);
    const Y = (v) => pad.t + ((yTop - Math.min(Math.max(v, yBot), yTop)) / (yTop - yBot)) * (h - pad.t - pad.b);
    // grid and axes
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = color('--muted');
    g.strokeStyle = color('--grid');
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let v = yBot; v <= yTop + 1e-9; v += 0.25) {
      g.beginPath();
      g.moveTo(pad.l, Y(v));
      g.lineTo(w - pad.r, Y(v));
      g.stroke();
      if (Math.abs(v * 2 - Math.round(v * 2)) < 1e-9) g.fillText(v.toFixed(1), pad.l - 6, Y(v));
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const every = niceStep(this.steps / 6);
    for (let s = 0; s <= this.steps; s += every) g.fillText(s >= 1000 ? `${s / 1000}k` : String(s), X(s), h - pad.b + 8);
    // the minibatch loss
    g.strokeStyle = color('--train');
    g.lineWidth = 1.6;
    g.beginPath();
    this.train.forEach(([s, v], i) => (i ? g.lineTo(X(s), Y(v)) : g.moveTo(X(s), Y(v))));
    g.stroke();
    // calibrated losses
    for (const [s, tr, dv] of this.evals) {
      dot(g, X(s), Y(tr), color('--calib'));
      dot(g, X(s), Y(dv), color('--dev'));
    }
  }
}

function dot(g, x, y, fill) {
  g.fillStyle = fill;
  g.beginPath();
  g.arc(x, y, 3.2, 0, 2 * Math.PI);
  g.fill();
}

function niceStep(x) {
  const p = 10 ** Math.floor(Math.log10(Math.max(x, 1)));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= x) ?? 10 * p;
}
