// Outputs are ours or untouched, and an earlier result stays whole until the new one is:
// - every folder svdlora writes as a whole (an adapter, a model, a checkpoint) carries a marker
//   file, and only a marked folder is ever replaced;
// - a run writes its files under staging names and swaps them in together through a journal, so
//   a kill at any point leaves either the earlier result or the new one once the journal is
//   replayed (recoverCommits) — never a mix;
// - a file svdlora writes is listed, with its size, in its folder's manifest (svdlora_outputs.json);
//   only a listed file is ever replaced, and a listed file of the right size is complete;
// - one svdlora process writes into an output folder at a time (lockFolder).
// writeOutputs puts them together for the outputs of a command or of an experiment step.
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

/** The manifest in every folder that holds files svdlora wrote: which, by what, and their sizes. */
export const MANIFEST = "svdlora_outputs.json";

export interface ManifestEntry {
  /** What wrote it (a command or an experiment step); outputs of the same writer in a folder are replaced as a set. */
  by: string;
  /** Its size (a file), or null (a folder: complete when it has the marker). */
  bytes: number | null;
  written: string;
}

/** The entries of dir's manifest by name; empty when it has none (or one svdlora did not write). */
export function readManifest(dir: string): Record<string, ManifestEntry> {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), "utf8")) as { made_by?: unknown; outputs?: unknown };
    if (m.made_by !== "svdlora" || !m.outputs || typeof m.outputs !== "object") return {};
    return Object.assign(Object.create(null), m.outputs) as Record<string, ManifestEntry>;
  } catch {
    return {};
  }
}

/** Whether p is svdlora's: a folder with the marker, or a file its folder's manifest lists. */
export function isOurs(p: string): boolean {
  return isOurFolder(p) || Object.hasOwn(readManifest(path.dirname(path.resolve(p))), path.basename(p));
}

/** Whether p is a complete output of svdlora: listed, there, and of the listed size (a folder: with the marker). */
export function isComplete(p: string): boolean {
  const entry = readManifest(path.dirname(path.resolve(p)))[path.basename(p)];
  if (!entry) return isOurFolder(p);
  try {
    const st = fs.statSync(p);
    return entry.bytes === null ? st.isDirectory() && isOurFolder(p) : st.isFile() && st.size === entry.bytes;
  } catch {
    return false;
  }
}

/** Throws unless p is free or svdlora's (see isOurs): what is not ours is never replaced. */
export function assertOurs(p: string): void {
  if (!fs.existsSync(p) || isOurs(p)) return;
  const why = fs.statSync(p).isDirectory()
    ? `a folder that svdlora did not write (no ${MARKER} in it)`
    : `a file that svdlora did not write (its folder's ${MANIFEST} does not list it)`;
  throw new Error(`${p} is ${why}: move it away or choose another output path`);
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

/** The locks this process holds, with how many times each is taken. */
const held = new Map<string, number>();

export interface FolderLock {
  /** The dead process whose stale lock was taken over, if any (to tell the user). */
  tookOverFrom: LockInfo | null;
  release(): void;
}

/**
 * Takes dir's lock for this process (creating dir), or throws naming the process that holds it.
 * A lock left by a process that is gone (same host) is taken over and reported. Within one
 * process the lock is re-entrant (a step that locks the folder of the run it belongs to).
 */
export function lockFolder(dir: string, purpose: string): FolderLock {
  const file = path.join(path.resolve(dir), LOCK);
  const times = held.get(file);
  if (times !== undefined) {
    held.set(file, times + 1);
    return { tookOverFrom: null, release: once(() => unlock(file)) };
  }
  fs.mkdirSync(dir, { recursive: true });
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
  held.set(file, 1);
  return { tookOverFrom, release: once(() => unlock(file)) };
}

function unlock(file: string): void {
  const times = held.get(file);
  if (times === undefined) return;
  if (times > 1) held.set(file, times - 1);
  else {
    held.delete(file);
    fs.rmSync(file, { force: true });
  }
}

const once = (fn: () => void) => {
  let done = false;
  return () => {
    if (!done) fn();
    done = true;
  };
};

/** How a command says that it took over a stale lock. */
export const tookOverNote = (dir: string, lock: FolderLock): string | null =>
  lock.tookOverFrom ? `took over ${dir}'s lock from process ${lock.tookOverFrom.pid} (${lock.tookOverFrom.purpose}), which is gone` : null;

/**
 * What a command does first in a folder it writes into: takes its lock, then finishes whatever a
 * killed process left half done there (recoverCommits). `note` hears about a stale lock taken over.
 */
export function claimFolder(dir: string, purpose: string, note?: (line: string) => void): FolderLock {
  const lock = lockFolder(dir, purpose);
  try {
    const line = tookOverNote(dir, lock);
    if (line) note?.(line);
    recoverCommits(dir);
    return lock;
  } catch (e) {
    lock.release();
    throw e;
  }
}

// ---- swapping a set of files in together -------------------------------------------------------

interface Journal {
  /** A move with from null removes `to` (an earlier output the new set does not have). */
  moves: { from: string | null; to: string; backup: string }[];
  trash: string;
}

const journalName = (name: string) => `.svdlora-commit-${name}.json`;
const trashName = (name: string) => `.svdlora-trash-${name}`;
/** Where a run or step builds its outputs under root until they are swapped in. */
export const stagingName = (name: string) => `.svdlora-partial-${name}`;

/**
 * Moves staged files or folders (from) to their final paths (to) in `root` as one change, and
 * removes the paths whose from is null: a journal is written first, then each earlier output is
 * moved into a trash folder and the new one into place; the trash and the journal go last. A kill
 * in between is finished by recoverCommits. Every path is relative to root.
 */
export function commitOutputs(root: string, name: string, moves: { from: string | null; to: string }[]): void {
  const trash = trashName(name);
  const journal: Journal = { moves: moves.map((m, i) => ({ ...m, backup: path.join(trash, `${i}-${path.basename(m.to)}`) })), trash };
  const file = path.join(root, journalName(name));
  // A trash folder without its journal is what a finished commit had not yet removed.
  fs.rmSync(path.join(root, trash), { recursive: true, force: true });
  fsChange(`write ${file}`);
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(journal)}\n`);
  fs.renameSync(`${file}.tmp`, file);
  replay(root, file, journal);
}

/**
 * Finishes every commit in root that a kill interrupted, and clears what killed runs left there:
 * their staging folders, and trash a finished commit had not removed (call with root's lock held,
 * so that no live run owns them). Returns the names of the commits it finished.
 */
export function recoverCommits(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  const done: string[] = [];
  const entries = fs.readdirSync(root);
  for (const f of entries) {
    const m = /^\.svdlora-commit-(.+)\.json$/.exec(f);
    if (!m) continue;
    let journal: Journal;
    try {
      journal = JSON.parse(fs.readFileSync(path.join(root, f), "utf8")) as Journal;
    } catch {
      throw new Error(
        `${path.join(root, f)}: an unreadable commit journal; move it away and rerun (the run it belongs to may need \`overwrite\`)`,
      );
    }
    replay(root, path.join(root, f), journal);
    done.push(m[1]);
  }
  for (const f of entries)
    if (/^\.svdlora-(partial|trash)-.+$/.test(f) || /^\.svdlora-commit-.+\.json\.tmp$/.test(f)) {
      fsChange(`remove ${path.join(root, f)}`);
      fs.rmSync(path.join(root, f), { recursive: true, force: true });
    }
  return done;
}

// Each move's steps are idempotent, so a replay after a kill at any point ends in the same state.
function replay(root: string, file: string, journal: Journal): void {
  const at = (p: string) => path.join(root, p);
  fs.mkdirSync(at(journal.trash), { recursive: true });
  for (const { from, to, backup } of journal.moves) {
    if (from !== null && !fs.existsSync(at(from))) continue; // moved already
    if (fs.existsSync(at(to))) {
      if (fs.existsSync(at(backup)))
        throw new Error(`${at(to)} appeared while its earlier version was set aside in ${at(backup)}: move one of them away and rerun`);
      fsChange(`rename ${at(to)}`);
      fs.renameSync(at(to), at(backup));
    }
    if (from === null) continue;
    fs.mkdirSync(path.dirname(at(to)), { recursive: true });
    fsChange(`rename ${at(from)}`);
    fs.renameSync(at(from), at(to));
  }
  // The trash before the journal: with the journal gone, nothing says the trash is garbage.
  fsChange(`remove ${at(journal.trash)}`);
  fs.rmSync(at(journal.trash), { recursive: true, force: true });
  fsChange(`remove ${file}`);
  fs.rmSync(file, { force: true });
}

// ---- a command's or a step's outputs -----------------------------------------------------------

export interface OutputPlan {
  /** The folder the outputs are under (locked, and where staging and the journal go). */
  root: string;
  /** Names the staging folder and the journal: one per kind of step in a root. */
  name: string;
  /** What writes them, recorded in the manifests; this writer's earlier outputs in those folders are replaced as a set. */
  by: string;
  /** The files and folders it may write, relative to root (one that the build does not write is left out). */
  outputs: string[];
}

/**
 * Writes a set of outputs so that the earlier set stays whole until the new one is: every output
 * path is checked first (new, or svdlora's); build(staged) writes each output at staged(rel) in a
 * staging folder; then they, the earlier outputs of the same writer that the new set lacks (removed)
 * and each folder's updated manifest are swapped in by one journaled commit. Holds root's lock
 * (the caller may hold it already), after recovering what a killed process left there.
 */
export async function writeOutputs<T>(
  plan: OutputPlan,
  build: (staged: (rel: string) => string) => Promise<T> | T,
  note?: (line: string) => void,
): Promise<T> {
  const root = plan.root;
  const lock = claimFolder(root, plan.by, note);
  try {
    for (const rel of plan.outputs) assertOurs(path.join(root, rel));
    const staging = path.join(root, stagingName(plan.name));
    fs.rmSync(staging, { recursive: true, force: true });
    fsChange(`mkdir ${staging}`);
    fs.mkdirSync(staging, { recursive: true });
    const staged = (rel: string) => path.join(staging, rel);
    let result: T;
    try {
      for (const rel of plan.outputs) fs.mkdirSync(path.dirname(staged(rel)), { recursive: true });
      result = await build(staged);
    } catch (e) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw e;
    }
    const written = plan.outputs.filter((rel) => fs.existsSync(staged(rel)));
    const moves: { from: string | null; to: string }[] = written.map((rel) => ({ from: path.join(stagingName(plan.name), rel), to: rel }));
    // Each folder's manifest: its other entries, this writer's earlier ones gone, the new ones in.
    const folders = new Set(plan.outputs.map((rel) => path.dirname(rel)));
    for (const [i, folder] of [...folders].entries()) {
      const entries = readManifest(path.join(root, folder));
      for (const [name, e] of Object.entries(entries))
        if (e.by === plan.by && !written.some((rel) => rel === path.join(folder, name))) {
          moves.push({ from: null, to: path.join(folder, name) });
          delete entries[name];
        }
      for (const rel of written.filter((r) => path.dirname(r) === folder)) {
        const st = fs.statSync(staged(rel));
        entries[path.basename(rel)] = { by: plan.by, bytes: st.isDirectory() ? null : st.size, written: new Date().toISOString() };
      }
      const manifest = path.join(".manifests", String(i));
      fs.mkdirSync(path.dirname(staged(manifest)), { recursive: true });
      fs.writeFileSync(
        staged(manifest),
        `${JSON.stringify({ made_by: "svdlora", version: packageVersion(), outputs: entries }, null, 2)}\n`,
      );
      moves.push({ from: path.join(stagingName(plan.name), manifest), to: path.join(folder, MANIFEST) });
    }
    commitOutputs(root, plan.name, moves);
    fs.rmSync(staging, { recursive: true, force: true });
    return result;
  } finally {
    lock.release();
  }
}
