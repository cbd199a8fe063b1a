import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { replaceDirectoryAtomic, writeFileAtomic, writeFileAtomicWith } from "../../src/util/atomic.js";
import { tempDir } from "./fixtures.js";

describe("atomic writes", () => {
  it("replaces a file's content, and keeps the old content when the writer fails", () => {
    const dir = tempDir();
    const file = path.join(dir, "log.csv");
    writeFileAtomic(file, "step,loss\n");
    writeFileAtomic(file, new Uint8Array([104, 105]));
    assert.equal(fs.readFileSync(file, "utf8"), "hi");
    assert.throws(
      () =>
        writeFileAtomicWith(file, (fd) => {
          fs.writeSync(fd, "partial");
          throw new Error("interrupted");
        }),
      /interrupted/,
    );
    assert.equal(fs.readFileSync(file, "utf8"), "hi");
    assert.deepEqual(fs.readdirSync(dir), ["log.csv"]);
  });

  it("swaps a directory for a freshly built one, or leaves it alone on failure", () => {
    const dir = tempDir();
    const target = path.join(dir, "out");
    replaceDirectoryAtomic(target, (temp) => fs.writeFileSync(path.join(temp, "a"), "1"));
    replaceDirectoryAtomic(target, (temp) => fs.writeFileSync(path.join(temp, "b"), "2"));
    assert.deepEqual(fs.readdirSync(target), ["b"]);
    assert.throws(
      () =>
        replaceDirectoryAtomic(target, (temp) => {
          fs.writeFileSync(path.join(temp, "c"), "3");
          throw new Error("failed halfway");
        }),
      /failed halfway/,
    );
    assert.deepEqual(fs.readdirSync(target), ["b"]);
    assert.deepEqual(fs.readdirSync(dir), ["out"]);
  });
});
