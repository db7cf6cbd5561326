// The command line of the demo scripts: node's parseArgs with a usage line, --help, and exit 2
// with the usage on a bad option or value.
import { parseArgs } from 'node:util';

/**
 * Parses process.argv for `options` (parseArgs's, every one a string unless said) and returns
 * the values with `int(name, min)`, which exits 2 unless the value is an integer ≥ min.
 */
export function demoOptions(usage, options) {
  let values;
  try {
    values = parseArgs({ options: { ...options, help: { type: 'boolean', default: false } } }).values;
  } catch (e) {
    console.error(`${e.message}\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const int = (name, min = 0) => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < min) {
      console.error(`--${name} must be an integer ≥ ${min}, got '${values[name]}'\n${usage}`);
      process.exit(2);
    }
    return v;
  };
  return { values, int };
}
