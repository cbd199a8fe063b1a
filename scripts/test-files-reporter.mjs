// A node:test reporter for scripts/run-tests.mjs: one JSON line for each file that
// scripts/test-files.mjs ran (its suite, at the top): the file, whether it passed, its wall seconds.
export default async function* fileResults(source) {
  for await (const { type, data } of source)
    if ((type === "test:pass" || type === "test:fail") && data.nesting === 0)
      yield `${JSON.stringify({ file: data.name, ok: type === "test:pass", seconds: (data.details?.duration_ms ?? 0) / 1000 })}\n`;
}
