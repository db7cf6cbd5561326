// Maps positions in transpiled model code back to the TypeScript the user wrote (source map
// v3, base64 VLQ), so that every instruction records where it was written.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DIGIT = new Map([...B64].map((c, i) => [c, i]));

/** Per generated line: sorted segments [generatedCol, originalLine, originalCol] (0-based). */
export type LineMap = readonly (readonly [number, number, number])[][];

export function decodeMappings(mappings: string): LineMap {
  const lines: [number, number, number][][] = [];
  let srcLine = 0;
  let srcCol = 0;
  let src = 0;
  let name = 0;
  for (const lineText of mappings.split(';')) {
    const segs: [number, number, number][] = [];
    let genCol = 0;
    for (const seg of lineText.split(',')) {
      if (!seg) continue;
      const f = decodeVlq(seg);
      genCol += f[0]!;
      if (f.length >= 4) {
        src += f[1]!;
        srcLine += f[2]!;
        srcCol += f[3]!;
        if (f.length >= 5) name += f[4]!;
        segs.push([genCol, srcLine, srcCol]);
      }
    }
    segs.sort((a, b) => a[0] - b[0]);
    lines.push(segs);
  }
  void src;
  void name;
  return lines;
}

function decodeVlq(s: string): number[] {
  const out: number[] = [];
  let value = 0;
  let shift = 0;
  for (const c of s) {
    const d = DIGIT.get(c);
    if (d === undefined) throw new Error(`internal: bad source map character ${c}`);
    value += (d & 31) << shift;
    if (d & 32) shift += 5;
    else {
      out.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return out;
}

/** Maps a 1-based generated (line, col) to a 1-based original (line, col). */
export function originalPosition(map: LineMap, line: number, col: number): { line: number; col: number } | undefined {
  const segs = map[line - 1];
  if (!segs || segs.length === 0) return undefined;
  let best: readonly [number, number, number] | undefined;
  for (const s of segs) {
    if (s[0] <= col - 1) best = s;
    else break;
  }
  best ??= segs[0]!;
  return { line: best[1] + 1, col: best[2] + 1 + Math.max(0, col - 1 - best[0]) };
}
