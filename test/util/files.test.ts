// Input/output path checks and file-system errors as one line naming the path and the cause.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { replaceDirectoryAtomic, writeFileAtomic, writeFileAtomicWith } from "../../src/util/atomic.js";
import {
  FileError,
  checkInputFile,
  checkOutputDir,
  checkOutputPath,
  displayPath,
  fileError,
  readInputFile,
  readInputText,
} from "../../src/util/files.js";
import { tempDir } from "../helpers.js";

const root = tempDir("files");

const errno = (code: string, syscall = "write") =>
  Object.assign(new Error(`${code}: raw message, ${syscall}`), { code, syscall, errno: -1 });
const oneLine = (error: unknown) => {
  const message = (error as Error).message;
  assert.ok(!/[\n\r]/.test(message), `one line: ${JSON.stringify(message)}`);
  return message;
};

/** A read-only tmpfs mounted under root, when this process may mount one (root on Linux); else undefined. */
function readOnlyMount(): string | undefined {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return undefined;
  const dir = path.join(root, "read-only");
  fs.mkdirSync(dir);
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", dir]);
  if (r.status !== 0) return undefined;
  after(() => spawnSync("umount", [dir]));
  return dir;
}

describe("paths in messages", () => {
  it("are printed as they are, or JSON-quoted when they hold control characters", () => {
    assert.equal(displayPath("out/model ü.json"), "out/model ü.json");
    assert.equal(displayPath("out/a\nb.json"), '"out/a\\nb.json"');
    assert.equal(displayPath("a\u001bb"), '"a\\u001bb"');
  });
});

describe("file-system errors", () => {
  it("name the path and the cause in words, for each errno that matters", () => {
    const causes: [string, RegExp][] = [
      ["ENOSPC", /no space left on the device \(ENOSPC\)$/],
      ["EROFS", /the file system is read-only \(EROFS\)$/],
      ["EACCES", /permission denied \(EACCES\)$/],
      ["ENOTDIR", /a part of the path is not a folder \(ENOTDIR\)$/],
      ["EISDIR", /it is a folder \(EISDIR\)$/],
      ["ENAMETOOLONG", /the name is too long for the file system \(ENAMETOOLONG\)$/],
      ["EDQUOT", /the disk quota is used up \(EDQUOT\)$/],
    ];
    for (const [code, cause] of causes) {
      const error = fileError(errno(code), "out/adapter_model.safetensors", "write it");
      assert.ok(error instanceof FileError);
      assert.equal((error as FileError).code, code);
      assert.match(oneLine(error), /^out\/adapter_model\.safetensors: cannot write it: /);
      assert.match(error.message, cause);
    }
    const plain = new Error("not a file-system error");
    assert.equal(fileError(plain, "x", "write it"), plain, "other errors pass through unchanged");
  });

  it("from inside an atomic write name the target, not the temporary file, and leave nothing behind", () => {
    const dir = fs.mkdtempSync(path.join(root, "enospc-"));
    const target = path.join(dir, "adapter_model.safetensors");
    assert.throws(
      () =>
        writeFileAtomicWith(target, () => {
          throw errno("ENOSPC");
        }),
      (e: Error) => e.message === `${target}: cannot write it: no space left on the device (ENOSPC)`,
    );
    assert.deepEqual(fs.readdirSync(dir), []);

    const folder = path.join(dir, "final_model");
    assert.throws(
      () =>
        replaceDirectoryAtomic(folder, (temp) =>
          writeFileAtomicWith(path.join(temp, "adapter_config.json"), () => {
            throw errno("EDQUOT");
          }),
        ),
      (e: Error) => e.message === `${folder}/adapter_config.json: cannot write it: the disk quota is used up (EDQUOT)`,
    );
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it("keep a path with a newline on one line", () => {
    fs.writeFileSync(path.join(root, "a\nfile"), "");
    assert.throws(
      () => writeFileAtomic(path.join(root, "a\nfile", "results.json"), "{}"),
      (e: Error) => oneLine(e).endsWith('a\\nfile" is a file, not a folder'),
    );
    writeFileAtomic(path.join(root, "ok\nname.json"), "{}");
    assert.equal(fs.readFileSync(path.join(root, "ok\nname.json"), "utf8"), "{}");
  });
});

describe("atomic writes with long names", () => {
  it("write a file whose name is 240 characters (the temporary name stays short)", () => {
    const dir = fs.mkdtempSync(path.join(root, "long-"));
    const target = path.join(dir, `${"n".repeat(235)}.json`);
    writeFileAtomic(target, "{}");
    assert.equal(fs.readFileSync(target, "utf8"), "{}");
    const folder = path.join(dir, "d".repeat(240));
    replaceDirectoryAtomic(folder, (temp) => fs.writeFileSync(path.join(temp, "a"), "1"));
    replaceDirectoryAtomic(folder, (temp) => fs.writeFileSync(path.join(temp, "b"), "2"));
    assert.deepEqual(fs.readdirSync(folder).sort(), ["b", "svdlora.json"]);
    assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(target), path.basename(folder)].sort());
  });

  it("refuse a name longer than the file system allows, saying so", () => {
    const target = path.join(root, `${"n".repeat(300)}.json`);
    assert.throws(
      () => checkOutputPath(target, "results file"),
      /cannot write the results file: the name nnnn.*… is 305 bytes, more than the 255/,
    );
  });
});

describe("input files", () => {
  const dir = fs.mkdtempSync(path.join(root, "input-"));
  const file = path.join(dir, "data.json");
  fs.writeFileSync(file, "[]");

  it("read a regular file", () => {
    assert.equal(readInputText(file, "data set file"), "[]");
    checkInputFile(file, "data set file");
  });

  it("refuse a folder, a device and a missing file in one line", () => {
    assert.throws(
      () => checkInputFile(dir, "weights file"),
      (e: Error) => oneLine(e) === `${dir}: is a folder, not the weights file (a regular file)`,
    );
    assert.throws(() => readInputFile("/dev/zero", "data set file"), /\/dev\/zero: is a device, not the data set file/);
    assert.throws(() => checkInputFile(path.join(dir, "nope.json"), "data set file"), /nope\.json: data set file not found$/);
  });

  it("refuse a FIFO at once instead of waiting for a writer", (t) => {
    const fifo = path.join(dir, "pipe.json");
    if (spawnSync("mkfifo", [fifo]).status !== 0) return t.skip("mkfifo is not available");
    const start = Date.now();
    assert.throws(() => readInputText(fifo, "model config"), /pipe\.json: is a named pipe \(FIFO\), not the model config/);
    assert.ok(Date.now() - start < 1000);
  });

  it("refuse a file over the size limit before reading it", () => {
    assert.throws(() => readInputFile(file, "adapter config", 1), /data\.json: the adapter config is 2 bytes, more than the 1-byte limit/);
  });
});

describe("output paths", () => {
  const dir = fs.mkdtempSync(path.join(root, "output-"));

  it("accept a new file in a folder that exists or can be made", () => {
    checkOutputPath(path.join(dir, "results.json"), "results file");
    checkOutputPath(path.join(dir, "new", "deeper", "results.json"), "results file");
    checkOutputDir(path.join(dir, "run", "out"), "output folder");
  });

  it("refuse a folder, a device, or a file where a folder should be", () => {
    assert.throws(() => checkOutputPath(dir, "results file"), /cannot write the results file: it is a folder, not a regular file/);
    assert.throws(() => checkOutputPath("/dev/null", "results file"), /it is a device, not a regular file/);
    const file = path.join(dir, "file.txt");
    fs.writeFileSync(file, "");
    assert.throws(() => checkOutputPath(path.join(file, "results.json"), "results file"), /file\.txt is a file, not a folder/);
    assert.throws(
      () => checkOutputDir(path.join(file, "out"), "output folder"),
      /cannot write the output folder: .*file\.txt is a file, not a folder/,
    );
  });

  it("say 'read-only' on a read-only file system, not ENOENT (when a read-only mount can be made here)", (t) => {
    const readOnly = readOnlyMount();
    if (!readOnly)
      return t.skip("cannot mount a read-only tmpfs here (needs root on Linux); the mapping is tested with injected errors above");
    const out = path.join(readOnly, "run", "out");
    assert.throws(
      () => checkOutputDir(out, "output folder"),
      /cannot write the output folder: the file system is read-only \(in .*read-only\) \(EROFS\)$/,
    );
    assert.throws(
      () => replaceDirectoryAtomic(out, () => {}),
      (e: Error) => /run\/out: cannot write the folder: the file system is read-only .*\(EROFS\)$/.test(oneLine(e)),
    );
    assert.throws(
      () => writeFileAtomic(path.join(readOnly, "x.json"), "{}"),
      /x\.json: cannot write the file: the file system is read-only \(EROFS\)$/,
    );
  });
});
