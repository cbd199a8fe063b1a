// Crash-safe file writes: write beside the target, fsync, then rename over it. A reader (or a
// crashed run resumed later) sees either the old file or the complete new one, never half of it.
// A file-system error names the target (never the temporary name) and its cause in words.
import * as fs from "node:fs";
import * as path from "node:path";
import { FileError, checkParentWritable, fileError } from "./files.js";

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
 * Builds a directory through fill(tempDir), then puts it at target. rename() cannot replace a
 * non-empty directory, so an existing target is first moved aside and deleted after the swap:
 * readers see the old or the new directory, except for the instant between the two renames.
 */
export function replaceDirectoryAtomic(target: string, fill: (tempDir: string) => void): void {
  const parent = path.dirname(path.resolve(target));
  const temp = tempPathFor(target);
  try {
    fs.mkdirSync(parent, { recursive: true });
    fs.mkdirSync(temp);
  } catch (error) {
    throw whyNotWritable(error, target, "folder");
  }
  try {
    fill(temp);
    fsyncDirectory(temp);
  } catch (error) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw withPath(fileError(error, target, "write it"), temp, target);
  }
  const old = fs.existsSync(target) ? `${tempPathFor(target)}.old` : undefined;
  try {
    if (old) fs.renameSync(target, old);
    try {
      fs.renameSync(temp, target);
    } catch (error) {
      if (old) fs.renameSync(old, target);
      throw error;
    }
  } catch (error) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw fileError(error, target, "replace it");
  }
  fsyncDirectory(parent);
  if (old) fs.rmSync(old, { recursive: true, force: true });
}
