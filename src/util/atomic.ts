// Crash-safe file writes: write beside the target, fsync, then rename over it. A reader (or a
// crashed run resumed later) sees either the old file or the complete new one, never half of it.
import * as fs from "node:fs";
import * as path from "node:path";

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
 * Builds a directory through fill(tempDir), then puts it at target. rename() cannot replace a
 * non-empty directory, so an existing target is first moved aside and deleted after the swap:
 * readers see the old or the new directory, except for the instant between the two renames.
 */
export function replaceDirectoryAtomic(target: string, fill: (tempDir: string) => void): void {
  const parent = path.dirname(path.resolve(target));
  fs.mkdirSync(parent, { recursive: true });
  const temp = tempPathFor(target);
  fs.mkdirSync(temp);
  try {
    fill(temp);
    fsyncDirectory(temp);
  } catch (error) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw error;
  }
  const old = fs.existsSync(target) ? `${tempPathFor(target)}.old` : undefined;
  if (old) fs.renameSync(target, old);
  try {
    fs.renameSync(temp, target);
  } catch (error) {
    if (old) fs.renameSync(old, target);
    fs.rmSync(temp, { recursive: true, force: true });
    throw error;
  }
  fsyncDirectory(parent);
  if (old) fs.rmSync(old, { recursive: true, force: true });
}
