// The graph picture, readable: shown at its own size (or the box's width, if that is less) in a
// scrolling box; −, +, fit and 1:1 buttons, ctrl + wheel zooms about the pointer, a drag moves
// the picture, a click switches between fit (the whole graph) and 1:1, and a link opens the
// full-size SVG on its own. `view.zoom` is the scale shown (1: the picture's own size).

const STEP = 1.25;
const MIN = 0.05;
const MAX = 4;

export class GraphView {
  constructor({ img, box, level, full, buttons }) {
    Object.assign(this, { img, box, level, full, zoom: 1 });
    img.addEventListener('load', () => this.set(Math.min(1, this.fitWidth())));
    buttons.in.onclick = () => this.set(this.zoom * STEP);
    buttons.out.onclick = () => this.set(this.zoom / STEP);
    buttons.fit.onclick = () => this.set(this.fit());
    buttons.one.onclick = () => this.set(1);
    box.addEventListener(
      'wheel',
      (e) => {
        if (!e.ctrlKey) return;
        e.preventDefault();
        this.set(this.zoom * (e.deltaY < 0 ? STEP : 1 / STEP), e);
      },
      { passive: false },
    );
    // drag to move; a click without a drag switches between fit and 1:1
    let drag = null;
    box.addEventListener('pointerdown', (e) => {
      drag = { x: e.clientX, y: e.clientY, left: box.scrollLeft, top: box.scrollTop, moved: false };
      box.setPointerCapture?.(e.pointerId);
    });
    box.addEventListener('pointermove', (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
      if (!drag.moved) return;
      box.classList.add('dragging');
      box.scrollLeft = drag.left - dx;
      box.scrollTop = drag.top - dy;
    });
    box.addEventListener('pointerup', (e) => {
      const click = drag && !drag.moved;
      drag = null;
      box.classList.remove('dragging');
      if (click) this.set(Math.abs(this.zoom - 1) < 1e-3 ? this.fit() : 1, e);
    });
  }

  /** Shows the picture at `url`. */
  show(url) {
    this.full.href = url;
    this.img.src = url;
  }

  /** The box's inner size (without its padding). */
  inner() {
    const cs = getComputedStyle(this.box);
    const pad = (a, b) => parseFloat(cs[a]) + parseFloat(cs[b]);
    return { w: this.box.clientWidth - pad('paddingLeft', 'paddingRight'), h: this.box.clientHeight - pad('paddingTop', 'paddingBottom') };
  }

  fitWidth() {
    const { w } = this.inner();
    return this.img.naturalWidth && w > 0 ? w / this.img.naturalWidth : 1;
  }

  /** The scale that shows the whole graph in the box. */
  fit() {
    const { w, h } = this.inner();
    return this.img.naturalWidth && w > 0 && h > 0 ? Math.min(w / this.img.naturalWidth, h / this.img.naturalHeight) : 1;
  }

  /** Shows the picture at scale z, keeping the point under the pointer `at` (else the box's centre) in place. */
  set(z, at) {
    const { img, box } = this;
    if (!img.naturalWidth) return;
    z = Math.min(MAX, Math.max(MIN, z));
    const r = box.getBoundingClientRect();
    const px = at ? at.clientX - r.left : box.clientWidth / 2;
    const py = at ? at.clientY - r.top : box.clientHeight / 2;
    const fx = (box.scrollLeft + px) / Math.max(1, box.scrollWidth);
    const fy = (box.scrollTop + py) / Math.max(1, box.scrollHeight);
    this.zoom = z;
    img.style.width = `${Math.round(img.naturalWidth * z)}px`;
    img.style.height = `${Math.round(img.naturalHeight * z)}px`;
    box.scrollLeft = fx * box.scrollWidth - px;
    box.scrollTop = fy * box.scrollHeight - py;
    this.level.textContent = `${Math.round(z * 100)}%`;
  }
}
