// Outputs are ours or untouched, and an earlier result stays whole until the new one is:
// - every folder svdlora writes as a whole (an adapter, a model, a checkpoint) carries a marker
//   file, and only a marked folder is ever replaced;
// - a run writes its files under staging names and swaps them in together through a journal, so
//   a kill at any point leaves either the earlier result or the new one once the journal is
//   replayed (recoverCommits) — never a mix;
// - one svdlora process writes into an output folder at a time (lockFolder).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { packageVersion } from "../version.js";

/** The marker in every folder svdlora writes as a whole. */
export const MARKER = "svdlora.json";

export const markerJson = (what: string) => `${JSON.stringify({ made_by: "svdlora", version: packageVersion(), what }, null, 2)}\n`;

/** Whether dir is a folder svdlora wrote (it has the marker, made by svdlora). */
export function isOurFolder(dir: string): boolean {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, MARKER), "utf8")) as { made_by?: unknown }).made_by === "svdlora";
  } catch {
    return false;
  }
}

// ---- fault injection for tests -----------------------------------------------------------------

let changes = 0;
let hook: ((n: number, what: string) => void) | null = null;

/**
 * Calls fn before each change these helpers make to the file system (a write, rename or removal),
 * with its ordinal from 1; a test's CLI process uses it to kill itself at the k-th change.
 */
export function onFilesystemChange(fn: ((n: number, what: string) => void) | null): void {
  hook = fn;
  changes = 0;
}

/** Announces a file-system change (see onFilesystemChange). */
export function fsChange(what: string): void {
  changes++;
  hook?.(changes, what);
}

// ---- locks -------------------------------------------------------------------------------------

const LOCK = ".svdlora.lock";

interface LockInfo {
  pid: number;
  host: string;
  started: string;
  purpose: string;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
};

const held = new Set<string>();

export interface FolderLock {
  /** The dead process whose stale lock was taken over, if any (to tell the user). */
  tookOverFrom: LockInfo | null;
  release(): void;
}

/**
 * Takes dir's lock for this process (creating dir), or throws naming the process that holds it.
 * A lock left by a process that is gone (same host) is taken over and reported.
 */
export function lockFolder(dir: string, purpose: string): FolderLock {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(path.resolve(dir), LOCK);
  if (held.has(file)) throw new Error(`${dir} is already in use by this process (${purpose})`);
  const mine: LockInfo = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), purpose };
  let tookOverFrom: LockInfo | null = null;
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, `${JSON.stringify(mine)}\n`, { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw e;
    }
    let holder: LockInfo | null = null;
    try {
      holder = JSON.parse(fs.readFileSync(file, "utf8")) as LockInfo;
    } catch {
      // unreadable: a process killed while writing it
    }
    if (holder && (holder.host !== os.hostname() || alive(holder.pid)))
      throw new Error(
        `${dir} is in use by another svdlora process (pid ${holder.pid} on ${holder.host}, ${holder.purpose}, since ${holder.started}): wait for it to finish or stop it`,
      );
    tookOverFrom = holder ?? { pid: 0, host: os.hostname(), started: "?", purpose: "unknown" };
    fs.rmSync(file, { force: true });
  }
  held.add(file);
  return {
    tookOverFrom,
    release: () => {
      if (!held.delete(file)) return;
      fs.rmSync(file, { force: true });
    },
  };
}

// ---- swapping a set of files in together -------------------------------------------------------

interface Journal {
  moves: { from: string; to: string; backup: string }[];
  trash: string;
}

const journalName = (name: string) => `.svdlora-commit-${name}.json`;

/**
 * Moves staged files or folders (from) to their final paths (to) in `root` as one change: a
 * journal is written first, then each earlier output is moved into a trash folder and the new one
 * into place; the journal and the trash go last. A kill in between is finished by recoverCommits.
 * Every path is relative to root.
 */
export function commitOutputs(root: string, name: string, moves: { from: string; to: string }[]): void {
  const trash = `.svdlora-trash-${name}`;
  const journal: Journal = { moves: moves.map((m, i) => ({ ...m, backup: path.join(trash, `${i}-${path.basename(m.to)}`) })), trash };
  const file = path.join(root, journalName(name));
  fsChange(`write ${file}`);
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(journal)}\n`);
  fs.renameSync(`${file}.tmp`, file);
  replay(root, file, journal);
}

/** Finishes every commit in root that a kill interrupted (call with root's lock held). */
export function recoverCommits(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  const done: string[] = [];
  for (const f of fs.readdirSync(root)) {
    const m = /^\.svdlora-commit-(.+)\.json$/.exec(f);
    if (!m) {
      if (/^\.svdlora-commit-.+\.json\.tmp$/.test(f)) fs.rmSync(path.join(root, f), { force: true }); // killed before the journal counted
      continue;
    }
    let journal: Journal;
    try {
      journal = JSON.parse(fs.readFileSync(path.join(root, f), "utf8")) as Journal;
    } catch {
      throw new Error(
        `${path.join(root, f)}: an unreadable commit journal; move it away and rerun (the run it belongs to may need --overwrite)`,
      );
    }
    replay(root, path.join(root, f), journal);
    done.push(m[1]);
  }
  return done;
}

// Each move's steps are idempotent, so a replay after a kill at any point ends in the same state.
function replay(root: string, file: string, journal: Journal): void {
  const at = (p: string) => path.join(root, p);
  fs.mkdirSync(at(journal.trash), { recursive: true });
  for (const { from, to, backup } of journal.moves) {
    if (!fs.existsSync(at(from))) continue; // moved already
    if (fs.existsSync(at(to))) {
      if (fs.existsSync(at(backup)))
        throw new Error(`${at(to)} appeared while its earlier version was set aside in ${at(backup)}: move one of them away and rerun`);
      fsChange(`rename ${at(to)}`);
      fs.renameSync(at(to), at(backup));
    }
    fs.mkdirSync(path.dirname(at(to)), { recursive: true });
    fsChange(`rename ${at(from)}`);
    fs.renameSync(at(from), at(to));
  }
  fsChange(`remove ${file}`);
  fs.rmSync(file, { force: true });
  fs.rmSync(at(journal.trash), { recursive: true, force: true });
}
