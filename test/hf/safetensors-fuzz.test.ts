// Mutated safetensors files: every read must either succeed with consistent tensors or throw a
// SafetensorsFormatError naming the file — never crash the process, hang, or throw anything else.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { SafetensorsFile, SafetensorsFormatError, saveSafetensors } from "../../src/hf/safetensors.js";
import { type Tensor, dispose, memory, tensor } from "../../src/torch/index.js";
import { tempDir } from "./fixtures.js";

const MUTATIONS = 25_000;
const seed = Number(process.env.SVDLORA_FUZZ_SEED ?? 20240917);

/** mulberry32: small, seedable, good enough to pick mutations. */
function rng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function validFiles(dir: string): Buffer[] {
  const sets: Record<string, Tensor>[] = [
    {
      w: tensor([
        [1, 2],
        [3, 4],
      ]),
      b: tensor([1, 2, 3], { dtype: "int64" }),
      m: tensor([true, false]),
    },
    {
      "model.layers.0.self_attn.q_proj.weight": tensor([1, 2, 3, 4]).to("bfloat16"),
      e: tensor([], { shape: [0, 3] }),
      s: tensor([7], { dtype: "float64" }).reshape([]),
    },
    {
      x: tensor([1, 2, 3, 4, 5, 6], { dtype: "uint8" }).reshape(2, 3),
      h: tensor([0.5, -1]).to("float16"),
      i: tensor([9, -9], { dtype: "int32" }),
    },
  ];
  return sets.map((tensors, i) => {
    const file = path.join(dir, `base${i}.safetensors`);
    saveSafetensors(file, tensors, i === 1 ? { format: "pt" } : undefined);
    dispose(tensors);
    return fs.readFileSync(file);
  });
}

const interesting = Buffer.from('{}[]",:0123456789-.eE \\u0');

function mutate(base: Buffer, random: () => number): Buffer {
  const pick = (n: number) => Math.floor(random() * n);
  let bytes = Buffer.from(base);
  const headerEnd = Math.min(bytes.length, 8 + Number(bytes.readBigUInt64LE(0)));
  const rounds = 1 + pick(3);
  for (let r = 0; r < rounds; r++) {
    switch (pick(7)) {
      case 0: {
        // flip one bit in the header
        const i = 8 + pick(Math.max(1, headerEnd - 8));
        if (i < bytes.length) bytes[i] ^= 1 << pick(8);
        break;
      }
      case 1: {
        // a JSON-significant character (or any byte) somewhere in the header
        const i = 8 + pick(Math.max(1, headerEnd - 8));
        if (i < bytes.length) bytes[i] = random() < 0.7 ? interesting[pick(interesting.length)] : random() < 0.5 ? 10 : pick(256);
        break;
      }
      case 2: // truncate anywhere
        bytes = bytes.subarray(0, pick(bytes.length + 1));
        break;
      case 3: {
        // a different header length: near the truth, small, or any 64-bit value
        if (bytes.length < 8) break;
        const n = bytes.readBigUInt64LE(0);
        const choices = [
          n + BigInt(pick(17)) - 8n,
          BigInt(pick(1 << 16)),
          BigInt(Math.floor(random() * 2 ** 53)) * 2048n,
          0n,
          100_000_000n,
          2n ** 64n - 1n,
        ];
        let v = choices[pick(choices.length)];
        if (v < 0n) v = 0n;
        bytes.writeBigUInt64LE(v % 2n ** 64n, 0);
        break;
      }
      case 4: {
        // insert or delete a byte in the header without fixing the length
        const i = 8 + pick(Math.max(1, headerEnd - 8));
        bytes =
          random() < 0.5
            ? Buffer.concat([bytes.subarray(0, i), Buffer.from([interesting[pick(interesting.length)]]), bytes.subarray(i)])
            : Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1)]);
        break;
      }
      case 5: {
        // change a digit (shapes and offsets)
        const digits: number[] = [];
        for (let i = 8; i < headerEnd && i < bytes.length; i++) if (bytes[i] >= 48 && bytes[i] <= 57) digits.push(i);
        if (digits.length) bytes[digits[pick(digits.length)]] = 48 + pick(10);
        break;
      }
      case 6: // extra bytes at the end
        bytes = Buffer.concat([bytes, Buffer.alloc(pick(9), pick(256))]);
        break;
    }
  }
  return bytes;
}

function readAll(file: SafetensorsFile): number {
  let count = 0;
  for (const name of file.keys()) {
    const entry = file.entry(name);
    const t = file.read(name);
    assert.deepEqual(t.shape, entry.shape);
    assert.equal(t.dtype, entry.dtype);
    assert.equal(t.bytes().length, entry.end - entry.begin);
    t.dispose();
    count++;
  }
  return count;
}

it(`survives ${MUTATIONS} mutated files (seed ${seed})`, { timeout: 60_000 }, () => {
  const dir = tempDir();
  const bases = validFiles(dir);
  const random = rng(seed);
  const liveBefore = memory().count;
  const started = Date.now();
  let accepted = 0;
  let rejected = 0;
  const kinds = new Map<string, number>();
  for (let i = 0; i < MUTATIONS; i++) {
    const bytes = mutate(bases[i % bases.length], random);
    const name = `mutant-${i}.safetensors`;
    // most mutants are parsed from memory; every 40th goes through a real file descriptor
    const viaDisk = i % 40 === 0;
    const filePath = path.join(dir, name);
    if (viaDisk) fs.writeFileSync(filePath, bytes);
    try {
      const file = viaDisk ? SafetensorsFile.open(filePath) : SafetensorsFile.fromBytes(bytes, name);
      try {
        readAll(file);
      } finally {
        file.close();
      }
      accepted++;
    } catch (error) {
      if (!(error instanceof SafetensorsFormatError)) {
        assert.fail(
          `mutant ${i} (seed ${seed}, header ${JSON.stringify(bytes.subarray(0, 120).toString("latin1"))}) threw ${error instanceof Error ? error.stack : String(error)}`,
        );
      }
      assert.ok(error.message.includes(name), `mutant ${i}: the error names the file: ${error.message}`);
      assert.ok(!error.message.includes("\n"), `mutant ${i}: one line: ${error.message}`);
      rejected++;
      // which check fired, for SVDLORA_FUZZ_VERBOSE
      const kind = error.message.slice(error.message.indexOf("file: ") + 6).replace(/["\d].*$/, "");
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    if (viaDisk) fs.rmSync(filePath);
  }
  const seconds = (Date.now() - started) / 1000;
  if (process.env.SVDLORA_FUZZ_VERBOSE) console.log({ accepted, rejected, seconds, kinds: [...kinds].sort((a, b) => b[1] - a[1]) });
  assert.equal(accepted + rejected, MUTATIONS);
  assert.ok(rejected > MUTATIONS / 2, `most mutants are invalid (${rejected} rejected)`);
  assert.ok(accepted > 0, "some mutants stay valid (e.g. changed data digits)");
  assert.equal(memory().count, liveBefore, "no tensor leaked");
  assert.ok(seconds < 30, `took ${seconds}s`);
});
