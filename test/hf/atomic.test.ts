import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { recoverDirectory, replaceDirectoryAtomic, swapNames, writeFileAtomic, writeFileAtomicWith } from "../../src/util/atomic.js";
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
    assert.deepEqual(fs.readdirSync(target).sort(), ["b", "svdlora.json"]);
    assert.throws(
      () =>
        replaceDirectoryAtomic(target, (temp) => {
          fs.writeFileSync(path.join(temp, "c"), "3");
          throw new Error("failed halfway");
        }),
      /failed halfway/,
    );
    assert.deepEqual(fs.readdirSync(target).sort(), ["b", "svdlora.json"]);
    assert.deepEqual(fs.readdirSync(dir), ["out"]);
  });

  it("never replaces a folder it did not write, nor a file", () => {
    const dir = tempDir();
    const theirs = path.join(dir, "theirs");
    fs.mkdirSync(theirs);
    fs.writeFileSync(path.join(theirs, "notes.txt"), "keep me");
    assert.throws(
      () => replaceDirectoryAtomic(theirs, () => {}),
      /theirs is a folder that svdlora did not write .*: move it away or choose another output path/,
    );
    assert.equal(fs.readFileSync(path.join(theirs, "notes.txt"), "utf8"), "keep me");
    const file = path.join(dir, "file");
    fs.writeFileSync(file, "data");
    assert.throws(() => replaceDirectoryAtomic(file, () => {}), /file is a file \(svdlora replaces only folders/);
    assert.equal(fs.readFileSync(file, "utf8"), "data");
    assert.deepEqual(fs.readdirSync(dir).sort(), ["file", "theirs"]);
  });

  it("finishes or undoes a swap that a kill interrupted", () => {
    const dir = tempDir();
    const target = path.join(dir, "out");
    const names = swapNames(target);
    const [next, old] = [path.basename(names.next), path.basename(names.old)];
    const build = (name: string, content: string) => {
      fs.mkdirSync(path.join(dir, name));
      fs.writeFileSync(path.join(dir, name, "a"), content);
      fs.writeFileSync(path.join(dir, name, "svdlora.json"), '{"made_by": "svdlora"}');
    };
    // Killed between the two renames: the old version aside, the complete new one beside it.
    build(old, "old");
    build(next, "new");
    recoverDirectory(target);
    assert.equal(fs.readFileSync(path.join(target, "a"), "utf8"), "new");
    assert.deepEqual(fs.readdirSync(dir), ["out"]);
    // Killed while filling the new version (no marker yet): the old one stays.
    fs.mkdirSync(path.join(dir, next));
    fs.writeFileSync(path.join(dir, next, "a"), "half");
    recoverDirectory(target);
    assert.equal(fs.readFileSync(path.join(target, "a"), "utf8"), "new");
    assert.deepEqual(fs.readdirSync(dir), ["out"]);
    // Killed after the old version moved aside but before the new one was complete cannot happen
    // (the new one is filled first); an old version alone is put back.
    fs.renameSync(target, path.join(dir, old));
    recoverDirectory(target);
    assert.equal(fs.readFileSync(path.join(target, "a"), "utf8"), "new");
  });
});
