// The command line of the demo scripts: node's parseArgs with a usage line, --help, and exit 2
// with the usage on a bad option or value.
import { parseArgs } from 'node:util';

/**
 * Parses process.argv for `options` (parseArgs's) and returns the values and positionals
 * (`{ positionals: true }` allows them) with `int(name, min, max)`, which exits 2 unless the
 * value is an integer in [min, max], and `fail(message)`, which exits 2 with the usage.
 */
export function demoOptions(usage, options, { positionals: allowPositionals = false } = {}) {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({ options: { ...options, help: { type: 'boolean', default: false } }, allowPositionals }));
  } catch (e) {
    console.error(`${e.message}\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const fail = (message) => {
    console.error(`${message}\n${usage}`);
    process.exit(2);
  };
  const int = (name, min = 0, max = Infinity) => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < min || v > max) fail(`--${name} must be an integer ${max === Infinity ? `≥ ${min}` : `in [${min}, ${max}]`}, got '${values[name]}'`);
    return v;
  };
  return { values, positionals, int, fail };
}
