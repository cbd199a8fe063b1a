// Crash-safe file writes: write beside the target, fsync, then rename over it. A reader (or a
// crashed run resumed later) sees either the old file or the complete new one, never half of it.
// A file-system error names the target (never the temporary name) and its cause in words.
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { FileError, checkParentWritable, fileError } from "./files.js";
import { MARKER, fsChange, isOurFolder, markerJson } from "./outputs.js";

/**
 * A unique name in the same directory as target (rename is only atomic within one file system).
 * It keeps at most the first 16 characters of target's name, so it is short whatever target is
 * (a name of up to 255 bytes, the file system's limit, still gets a temporary name).
 */
export function tempPathFor(target: string): string {
  const random = Math.random().toString(36).slice(2, 10);
  const stem = Array.from(path.basename(target)).slice(0, 16).join("");
  return path.join(path.dirname(target), `.${stem}.${process.pid}-${random}.tmp`);
}

/** Flushes a directory entry (the rename) to disk; some file systems do not allow it, which is fine. */
export function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // best effort: e.g. not permitted on some platforms
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes all of data at the file descriptor's current position (writeSync may write less). */
export function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
}

/**
 * Calls write(fd) on a fresh temporary file next to target, then fsyncs and renames it over
 * target. On any error the temporary file is removed and the error rethrown; target is untouched.
 */
export function writeFileAtomicWith(target: string, write: (fd: number) => void): void {
  const temp = tempPathFor(target);
  let fd: number;
  try {
    fd = fs.openSync(temp, "wx", 0o644);
  } catch (error) {
    throw whyNotWritable(error, target, "file");
  }
  let closed = false;
  try {
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    closed = true;
    fsChange(`rename ${target}`);
    fs.renameSync(temp, target);
  } catch (error) {
    if (!closed) fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw fileError(error, target, "write it");
  }
  fsyncDirectory(path.dirname(target));
}

/** A FileError about a file inside `from` (the temporary folder) as one about the same file in `to`. */
function withPath(error: Error, from: string, to: string): Error {
  if (!(error instanceof FileError) || !error.path.startsWith(from)) return error;
  const inner = (p: string) => JSON.stringify(p).slice(1, -1); // as it appears inside a JSON-quoted path
  const message = error.message.split(from).join(to).split(inner(from)).join(inner(to));
  return new FileError(message, to + error.path.slice(from.length), error.code);
}

/**
 * The reason a file or folder cannot be created at target: the first folder above it that is
 * missing, read-only or not a folder (a recursive mkdir on a read-only file system says ENOENT),
 * else the error itself, naming target.
 */
function whyNotWritable(error: unknown, target: string, what: string): Error {
  try {
    checkParentWritable(target, what);
  } catch (reason) {
    return reason as Error;
  }
  return fileError(error, target, "write it");
}

/** Writes a whole file atomically (string data is written as UTF-8). */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  writeFileAtomicWith(target, (fd) => writeAll(fd, bytes));
}

/**
 * Builds a directory through fill(tempDir), then puts it at target; svdlora's marker file is
 * written into it last. rename() cannot replace a non-empty directory, so an existing target is
 * first moved aside and deleted after the swap. Only a folder svdlora wrote (one with the marker)
 * is ever replaced: anything else at target is refused. The temporary names are fixed for each
 * target, so a swap a kill interrupted is finished by recoverDirectory (which this calls first);
 * callers hold the output folder's lock.
 */
export function replaceDirectoryAtomic(target: string, fill: (tempDir: string) => void, what = "output"): void {
  const staged = stageDirectory(target, what);
  try {
    fill(staged.dir);
  } catch (error) {
    staged.discard();
    throw withPath(fileError(error, target, "write it"), staged.dir, target);
  }
  staged.commit();
}

/** A folder being built for target (see replaceDirectoryAtomic): fill `dir`, then commit() or discard(). */
export interface StagedDirectory {
  dir: string;
  commit(): void;
  discard(): void;
}

/** Starts building a folder that will replace target (see replaceDirectoryAtomic); refuses a target that is not ours. */
export function stageDirectory(target: string, what = "output"): StagedDirectory {
  const parent = path.dirname(path.resolve(target));
  const { next, old } = swapNames(target);
  try {
    fs.mkdirSync(parent, { recursive: true });
    assertReplaceable(target);
    fsChange(`mkdir ${next}`);
    fs.rmSync(next, { recursive: true, force: true });
    fs.mkdirSync(next);
  } catch (error) {
    throw error instanceof FileError || !(error as NodeJS.ErrnoException).code ? error : whyNotWritable(error, target, "folder");
  }
  return {
    dir: next,
    discard: () => fs.rmSync(next, { recursive: true, force: true }),
    commit: () => {
      try {
        fsChange(`write ${path.join(next, MARKER)}`); // the commit point: a folder with its marker is complete
        fs.writeFileSync(path.join(next, MARKER), markerJson(what));
        fsyncDirectory(next);
        const replacing = fs.existsSync(target);
        if (replacing) {
          fsChange(`rename ${target}`);
          fs.renameSync(target, old);
        }
        fsChange(`rename ${next}`);
        fs.renameSync(next, target);
        fsyncDirectory(parent);
        if (replacing) {
          fsChange(`remove ${old}`);
          fs.rmSync(old, { recursive: true, force: true });
        }
      } catch (error) {
        throw fileError(error, target, "replace it");
      }
    },
  };
}

/** Throws unless target is free or a folder svdlora wrote (after finishing an interrupted swap). */
export function assertReplaceable(target: string): void {
  recoverDirectory(target);
  if (!fs.existsSync(target) || isOurFolder(target)) return;
  const what = fs.statSync(target).isDirectory() ? "a folder that svdlora did not write" : "a file";
  throw new Error(`${target} is ${what} (svdlora replaces only folders with its ${MARKER}): move it away or choose another output path`);
}

/** The fixed names a folder's new and old versions take during a swap: short, whatever the target's name. */
export function swapNames(target: string): { next: string; old: string } {
  const dir = path.dirname(path.resolve(target));
  const name = path.basename(target);
  const stem = `.${Array.from(name).slice(0, 16).join("")}.${createHash("sha256").update(name).digest("hex").slice(0, 8)}`;
  return { next: path.join(dir, `${stem}.new`), old: path.join(dir, `${stem}.old`) };
}

/**
 * Finishes or undoes a replaceDirectoryAtomic that a kill interrupted: a complete new version
 * (target missing) moves into place; an unfinished one (target still there) is removed; an old
 * version left beside the new target is removed, and one left alone is put back.
 */
export function recoverDirectory(target: string): void {
  const { next, old } = swapNames(target);
  const has = (p: string) => fs.existsSync(p);
  if (has(next) && !has(target) && isOurFolder(next)) fs.renameSync(next, target);
  else if (has(next)) fs.rmSync(next, { recursive: true, force: true });
  if (has(old) && has(target)) fs.rmSync(old, { recursive: true, force: true });
  else if (has(old)) fs.renameSync(old, target);
}
