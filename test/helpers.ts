// Shared test helpers. SVDLORA_TEST_DEVICE=cuda runs the device-aware tests on the GPU.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import * as torch from "../src/torch/index.js";
import type { Tensor } from "../src/torch/index.js";

export const device = process.env.SVDLORA_TEST_DEVICE ?? "cpu";

/** Asserts two flat number lists agree within atol + rtol·|expected|. */
export function assertClose(
  actual: ArrayLike<number | bigint> | number[],
  expected: ArrayLike<number>,
  atol = 1e-5,
  rtol = 1e-5,
  what = "value",
): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = Number(actual[i]);
    const e = expected[i];
    assert.ok(Math.abs(a - e) <= atol + rtol * Math.abs(e), `${what}[${i}]: ${a} != ${e}`);
  }
}

/** The tensor's elements as plain numbers (on the CPU). */
/** config.json keys of a tiny Qwen2 (32 wide, 97-token vocabulary) for tests; overrides replace keys. */
export const tinyQwen2 = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  model_type: "qwen2",
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 97,
  max_position_embeddings: 64,
  rope_theta: 10000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  ...overrides,
});

export const values = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number | bigint>, Number);

let collectGarbage: (() => void) | undefined;

/**
 * The live tensors (torch.memory()) once the garbage collector has finalized every handle that
 * nothing refers to. Read this before some work and torch.memory() right after it: a handle the
 * work made and never disposed still counts then (V8 collects when it likes), so a difference is a
 * tensor the work left behind.
 */
export async function settledMemory(): Promise<torch.LiveTensors> {
  if (!collectGarbage) {
    v8.setFlagsFromString("--expose-gc");
    collectGarbage = vm.runInNewContext("gc") as () => void;
  }
  collectGarbage();
  await new Promise((settled) => setImmediate(settled)); // the handles' finalizers
  return torch.memory();
}

/** Writes the first n items of a JSON data set into dir/name and returns its path. */
export function dataSubset(from: string, n: number, dir: string, name: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(JSON.parse(fs.readFileSync(from, "utf8")).slice(0, n)));
  return file;
}

/** A fresh temporary folder, removed when the test file's tests are done. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `svdlora-${prefix}-`));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the command line in this process (no libtorch start-up per call); returns what it printed and its exit code. */
export async function runCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import("../src/cli/main.js");
  let stdout = "";
  let stderr = "";
  const code = await main(args, {
    io: {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      interactive: false,
    },
  });
  return { code, stdout, stderr: stderr.trim() };
}

/** The svdlora command (bin/svdlora.js), for the tests that need a process of its own. */
export const BIN = new URL("../../bin/svdlora.js", import.meta.url).pathname;

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the command line in a child process (for kills, stops and signals); resolves when it exits. */
export function spawnCli(args: string[], env: Record<string, string> = {}, started?: (pid: number) => void): Promise<Exited> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, OMP_NUM_THREADS: "1", ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  if (child.pid !== undefined) started?.(child.pid);
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr: stderr.trim() })));
}

/** The bytes of every file under dir by relative path (folders are not listed; paths matching skip are left out); a file: itself, as "". */
export function treeFiles(dir: string, skip?: RegExp): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (!fs.existsSync(dir)) return out;
  if (fs.statSync(dir).isFile()) return out.set("", fs.readFileSync(dir));
  for (const rel of fs.readdirSync(dir, { recursive: true }).map(String).sort()) {
    const abs = path.join(dir, rel);
    if (fs.statSync(abs).isFile() && !skip?.test(rel)) out.set(rel, fs.readFileSync(abs));
  }
  return out;
}

/** Whether two trees (treeFiles) hold the same files with the same bytes. */
export const sameTree = (a: Map<string, Buffer>, b: Map<string, Buffer>): boolean =>
  a.size === b.size && [...a].every(([rel, bytes]) => b.get(rel)?.equals(bytes));

/** The pid of a process that has exited (to stand for a killed one). */
export function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", ""]);
  return r.pid;
}
