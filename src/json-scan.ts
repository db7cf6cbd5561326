// What the checks of checkpoint and values files need beyond JSON.parse: a short, bounded preview
// of any parsed value for an error message (JSON.stringify of a 200,000-deep array overflows the
// stack), and the duplicate keys that JSON.parse silently resolves to the last one.

/** At most `max` characters of a parsed JSON value, nested at most 3 deep (never recursing further). */
export function preview(v: unknown, max = 60): string {
  const text = previewAt(v, 0, max + 1);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function previewAt(v: unknown, depth: number, budget: number): string {
  if (Array.isArray(v)) {
    if (depth >= 3) return v.length ? '[…]' : '[]';
    let s = '[';
    for (let i = 0; i < v.length && s.length < budget; i++) s += (i ? ',' : '') + previewAt(v[i], depth + 1, budget - s.length);
    return s.length < budget ? `${s}]` : s;
  }
  if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v);
    if (depth >= 3) return keys.length ? '{…}' : '{}';
    let s = '{';
    for (let i = 0; i < keys.length && s.length < budget; i++)
      s += `${i ? ',' : ''}${JSON.stringify(keys[i])}:${previewAt((v as Record<string, unknown>)[keys[i]!], depth + 1, budget - s.length)}`;
    return s.length < budget ? `${s}}` : s;
  }
  return JSON.stringify(v) ?? String(v);
}

/**
 * The first key that appears twice in an object of valid JSON text, at nesting depth 1 (the
 * top-level object) or 2 (an object that is the value of a top-level key, `parent`); undefined
 * when there is none. The scan is a loop over the text, so any depth is safe.
 */
export function duplicateKey(text: string): { key: string; parent?: string } | undefined {
  // one entry per open container: its keys (objects only) and the top-level key it is the value of
  const stack: { keys?: Set<string>; parent?: string; expectKey: boolean }[] = [];
  let lastTopKey: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey && stack.length <= 2) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return stack.length === 1 ? { key } : { key, parent: top.parent };
        top.keys.add(key);
        if (stack.length === 1) lastTopKey = key;
      }
      if (top) top.expectKey = false;
      i = j;
    } else if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      const parent = stack.length === 1 ? lastTopKey : undefined;
      stack.push({ keys: ch === 0x7b ? new Set() : undefined, parent, expectKey: ch === 0x7b });
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop();
    } else if (ch === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}
