// Crash-safe file writes: write beside the target, fsync, then rename over it. A reader (or a
// crashed run resumed later) sees either the old file or the complete new one, never half of it.
import * as fs from "node:fs";
import * as path from "node:path";
import { MARKER, fsChange, isOurFolder, markerJson } from "./outputs.js";

/** A unique name in the same directory as target (rename is only atomic within one file system). */
export function tempPathFor(target: string): string {
  const random = Math.random().toString(36).slice(2, 10);
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${random}`);
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
  const fd = fs.openSync(temp, "wx", 0o644);
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
    throw error;
  }
  fsyncDirectory(path.dirname(target));
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
 * is ever replaced: anything else at target is refused. The temporary names are fixed
 * (.NAME.new, .NAME.old), so a swap a kill interrupted is finished by recoverDirectory (which
 * this calls first); callers hold the output folder's lock.
 */
export function replaceDirectoryAtomic(target: string, fill: (tempDir: string) => void, what = "output"): void {
  const staged = stageDirectory(target, what);
  try {
    fill(staged.dir);
  } catch (error) {
    staged.discard();
    throw error;
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
  fs.mkdirSync(parent, { recursive: true });
  assertReplaceable(target);
  const { next, old } = swapNames(target);
  fsChange(`mkdir ${next}`);
  fs.rmSync(next, { recursive: true, force: true });
  fs.mkdirSync(next);
  return {
    dir: next,
    discard: () => fs.rmSync(next, { recursive: true, force: true }),
    commit: () => {
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

const swapNames = (target: string) => {
  const dir = path.dirname(path.resolve(target));
  const name = path.basename(target);
  return { next: path.join(dir, `.${name}.new`), old: path.join(dir, `.${name}.old`) };
};

/**
 * Finishes or undoes a replaceDirectoryAtomic that a kill interrupted: a complete new version
 * (target missing) moves into place; an unfinished one (target still there) is removed; an old
 * version left beside the new target is removed, and one left alone is put back.
 */
export function recoverDirectory(target: string): void {
  const { next, old } = swapNames(target);
  const has = (p: string) => fs.existsSync(p);
  if (has(next) && !has(target) && isOurFolder(next)) {
    fs.renameSync(next, target);
  } else if (has(next)) {
    fs.rmSync(next, { recursive: true, force: true });
  }
  if (has(old) && has(target)) fs.rmSync(old, { recursive: true, force: true });
  else if (has(old)) fs.renameSync(old, target);
}
