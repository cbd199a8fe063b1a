// Shared test helpers. SVDLORA_TEST_DEVICE=cuda runs the device-aware tests on the GPU.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after } from "node:test";
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
export const values = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number | bigint>, Number);

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
