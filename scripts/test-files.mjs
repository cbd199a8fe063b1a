// Runs test files in this one process, one after another, each as a suite named by its path
// (scripts/run-tests.mjs starts it): a file's top-level tests and hooks become its suite's, so its
// before() runs when its turn comes and its after() when its tests are done. A file is imported
// only once the one before it has finished, after hooks included: a module's top-level code
// (a chdir, a seed, files it writes) never runs beside another file's tests.
// Usage: node --test-reporter=spec scripts/test-files.mjs <file.test.js>…
import { after, describe } from "node:test";
import { pathToFileURL } from "node:url";

for (const file of process.argv.slice(2))
  await new Promise((done) =>
    describe(file, async () => {
      try {
        await import(pathToFileURL(file).href);
      } finally {
        after(done); // the last of the suite's after hooks: the file's own run before it
      }
    }),
  );
