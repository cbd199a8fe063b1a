// Input and output paths: checked before any work is done, and every file-system error turned
// into one line that names the path and the cause in words (no space, read-only, not a folder…).
import * as fs from "node:fs";
import * as path from "node:path";

/** A path as it appears in a one-line message: as it is, or JSON-quoted when it holds control characters. */
export function displayPath(p: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  return /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(p) ? JSON.stringify(p) : p;
}

/** A value from a file as it appears in a one-line message: JSON, except numbers JSON cannot write (1e400 reads as Infinity). */
export const showValue = (v: unknown): string =>
  typeof v === "number" && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? String(v));

/** What an errno code means, in words. */
const CAUSES: Record<string, string> = {
  ENOSPC: "no space left on the device",
  EDQUOT: "the disk quota is used up",
  EROFS: "the file system is read-only",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOTDIR: "a part of the path is not a folder",
  EISDIR: "it is a folder",
  ENAMETOOLONG: "the name is too long for the file system",
  ENOENT: "no such file or folder",
  EEXIST: "it already exists",
  EMFILE: "too many open files",
  ENFILE: "too many open files",
  EIO: "input/output error (a failing disk or a lost network mount?)",
  EFBIG: "the file is too large for the file system",
  ELOOP: "too many levels of symbolic links",
  EBUSY: "it is busy",
};

/** An error about one path, with the errno code kept (`code`) when it comes from the file system. */
export class FileError extends Error {
  constructor(
    message: string,
    readonly path: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = "FileError";
  }
}

const errnoCode = (error: unknown): string | undefined => {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" && /^E[A-Z]+$/.test(code) ? code : undefined;
};

/**
 * A file-system error (one with an errno code) as a FileError naming `file`:
 * "<file>: cannot <action>: <cause> (<CODE>)". Any other error is returned as it is.
 */
export function fileError(error: unknown, file: string, action: string): Error {
  const code = errnoCode(error);
  if (code === undefined || error instanceof FileError) return error as Error;
  const cause = CAUSES[code] ?? (error as Error).message.replace(/\s+/g, " ");
  return new FileError(`${displayPath(file)}: cannot ${action}: ${cause} (${code})`, file, code);
}

/** What `stats` is when it is not a regular file ("a folder", "a named pipe (FIFO)"…); undefined for a regular file. */
function irregularKind(stats: fs.Stats): string | undefined {
  if (stats.isFile()) return undefined;
  if (stats.isDirectory()) return "a folder";
  if (stats.isFIFO()) return "a named pipe (FIFO)";
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return "a device";
  if (stats.isSocket()) return "a socket";
  return "not a regular file";
}

/**
 * Opens a regular file for reading, refusing folders, FIFOs, devices and sockets up front. The
 * open does not block on a FIFO (O_NONBLOCK), and the type is checked on the open descriptor, so
 * nothing can be swapped in between. `what` names the file in messages ("data set file").
 */
export function openInputFile(file: string, what: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (error) {
    if (errnoCode(error) === "ENOENT") throw new FileError(`${displayPath(file)}: ${what} not found`, file, "ENOENT");
    throw fileError(error, file, `read the ${what}`);
  }
  const kind = irregularKind(fs.fstatSync(fd));
  if (kind !== undefined) {
    fs.closeSync(fd);
    throw new FileError(`${displayPath(file)}: is ${kind}, not the ${what} (a regular file)`, file);
  }
  return fd;
}

/** Checks that `file` is a regular file that can be opened, without reading it. */
export function checkInputFile(file: string, what: string): void {
  fs.closeSync(openInputFile(file, what));
}

/** Reads a whole regular file (see openInputFile); larger than maxBytes is refused before reading. */
export function readInputFile(file: string, what: string, maxBytes = 2 ** 31 - 1): Buffer {
  const fd = openInputFile(file, what);
  try {
    const size = fs.fstatSync(fd).size;
    if (size > maxBytes) {
      throw new FileError(`${displayPath(file)}: the ${what} is ${size} bytes, more than the ${maxBytes}-byte limit`, file);
    }
    return fs.readFileSync(fd);
  } catch (error) {
    throw fileError(error, file, `read the ${what}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** readInputFile as UTF-8 text. */
export function readInputText(file: string, what: string, maxBytes?: number): string {
  return readInputFile(file, what, maxBytes).toString("utf8");
}

/** The longest name one path component may have on Linux and macOS file systems, in bytes. */
const NAME_MAX = 255;

/** Refuses a path with a component longer than NAME_MAX bytes (the file system would, with a bare ENAMETOOLONG). */
function checkNameLengths(target: string, what: string): void {
  for (const part of path.resolve(target).split(path.sep)) {
    const bytes = Buffer.byteLength(part, "utf8");
    if (bytes > NAME_MAX) {
      throw new FileError(
        `${displayPath(target)}: cannot write the ${what}: the name ${displayPath(part.slice(0, 24))}… is ${bytes} bytes, more than the ${NAME_MAX} a file system allows`,
        target,
        "ENAMETOOLONG",
      );
    }
  }
}

/**
 * The nearest folder at or above `dir` that exists; it must be a folder we may write in (else a
 * FileError naming it and the cause, e.g. a read-only file system). Folders below it can be made.
 */
function writableAncestor(dir: string, target: string, what: string): string {
  let at = path.resolve(dir);
  for (;;) {
    let stats: fs.Stats | undefined;
    try {
      stats = fs.statSync(at);
    } catch (error) {
      const code = errnoCode(error);
      // ENOTDIR: a file above; the walk up reaches it and says so
      if (code !== "ENOENT" && code !== "ENOTDIR") throw fileError(error, target, `write the ${what}`);
    }
    if (stats) {
      if (!stats.isDirectory()) {
        throw new FileError(
          `${displayPath(target)}: cannot write the ${what}: ${displayPath(at)} is a file, not a folder`,
          target,
          "ENOTDIR",
        );
      }
      try {
        fs.accessSync(at, fs.constants.W_OK);
      } catch (error) {
        const code = errnoCode(error) ?? "EACCES";
        const where = at === path.resolve(dir) ? "" : ` (in ${displayPath(at)})`;
        throw new FileError(`${displayPath(target)}: cannot write the ${what}: ${CAUSES[code] ?? code}${where} (${code})`, target, code);
      }
      return at;
    }
    const parent = path.dirname(at);
    if (parent === at) return at;
    at = parent;
  }
}

/**
 * Checks, before any work, that the file `file` can be written: its folder exists or can be made
 * in a writable folder, and `file` is not a folder, FIFO or device. `what` names it ("results file").
 */
export function checkOutputPath(file: string, what: string): void {
  checkNameLengths(file, what);
  let stats: fs.Stats | undefined;
  try {
    stats = fs.statSync(file);
  } catch (error) {
    if (errnoCode(error) !== "ENOENT" && errnoCode(error) !== "ENOTDIR") throw fileError(error, file, `write the ${what}`);
  }
  if (stats) {
    const kind = irregularKind(stats);
    if (kind !== undefined) throw new FileError(`${displayPath(file)}: cannot write the ${what}: it is ${kind}, not a regular file`, file);
  }
  writableAncestor(path.dirname(path.resolve(file)), file, what);
}

/** Checks, before any work, that the folder `dir` exists and is writable, or can be made in a writable folder. */
export function checkOutputDir(dir: string, what: string): void {
  checkNameLengths(dir, what);
  writableAncestor(dir, dir, what);
}

/** Checks that something can be created at `target`: its folder exists and is writable, or can be made. */
export function checkParentWritable(target: string, what: string): void {
  checkNameLengths(target, what);
  writableAncestor(path.dirname(path.resolve(target)), target, what);
}
