// A test reporter (node --test-reporter) that prints each test file's wall time, slowest first.
// The files run one after another on a machine of few cores; a file's time is from the end of the
// previous file's last event to the end of its own (module loading and libtorch's start included).
export default async function* testTimes(source) {
  const files = new Map();
  let last = performance.now();
  for await (const event of source) {
    const file = event.data?.file;
    if (!file || (event.type !== "test:pass" && event.type !== "test:fail")) continue;
    const now = performance.now();
    files.set(file, (files.get(file) ?? 0) + (now - last));
    last = now;
  }
  for (const [file, ms] of [...files].sort((a, b) => b[1] - a[1]))
    yield `${(ms / 1000).toFixed(1).padStart(6)}  ${file.replace(/^.*\/dist\//, "dist/")}\n`;
}
