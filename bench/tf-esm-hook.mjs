// A module resolution hook (node:module register) that lets Node load TF.js's ES-module build
// from node_modules/@tensorflow: its files import each other without the '.js' extension, as a
// bundler allows and Node does not. Only the gradient registrations are loaded this way (see
// tf-model.mjs); it changes nothing for any other import.
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const fromTfjs = context.parentURL?.includes('/node_modules/@tensorflow/');
    if (!fromTfjs || !specifier.startsWith('.')) throw err;
    for (const suffix of ['.js', '/index.js']) {
      try {
        return await nextResolve(specifier + suffix, context);
      } catch {
        // try the next spelling
      }
    }
    throw err;
  }
}
