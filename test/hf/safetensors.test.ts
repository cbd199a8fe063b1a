import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { SafetensorsFile, loadSafetensors, readSafetensorsHeader, saveSafetensors } from "../../src/hf/safetensors.js";
import { type DType, type Tensor, arange, dispose, fromBytes, memory, randn, tensor } from "../../src/torch/index.js";
import { f32Bytes, safetensorsBytes, tempDir } from "./fixtures.js";

const dir = tempDir();

/** Raw bytes that exercise every bit pattern class of a dtype (NaN payloads, -0, subnormals...). */
function sampleBytes(dtype: DType, count: number): Uint8Array {
  const size = { float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8, int32: 4, uint8: 1, bool: 1 }[dtype];
  const bytes = new Uint8Array(count * size);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 73 + 41) & 0xff;
  if (dtype === "bool") for (let i = 0; i < bytes.length; i++) bytes[i] = i % 3 === 0 ? 1 : 0;
  return bytes;
}

describe("safetensors round trip", () => {
  const dtypes: DType[] = ["float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"];
  for (const dtype of dtypes) {
    it(`keeps ${dtype} tensors bit for bit, including scalars and empty tensors`, () => {
      const before = memory().count;
      const tensors: Record<string, Tensor> = {
        matrix: fromBytes(sampleBytes(dtype, 12), [3, 4], dtype),
        scalar: fromBytes(sampleBytes(dtype, 1), [], dtype),
        empty: fromBytes(new Uint8Array(0), [0, 5], dtype),
      };
      const file = path.join(dir, `${dtype}.safetensors`);
      saveSafetensors(file, tensors);
      const loaded = loadSafetensors(file);
      assert.deepEqual([...loaded.keys()].sort(), ["empty", "matrix", "scalar"]);
      for (const [name, t] of Object.entries(tensors)) {
        const back = loaded.get(name)!;
        assert.equal(back.dtype, dtype);
        assert.deepEqual(back.shape, t.shape);
        assert.deepEqual(back.bytes(), t.bytes());
      }
      dispose([tensors, [...loaded.values()]]);
      assert.equal(memory().count, before, "no tensor leaked");
    });
  }

  it("writes non-contiguous views as their logical (row-major) contents", () => {
    const base = arange(6, undefined, 1, { dtype: "float32" }).reshape(2, 3);
    const transposed = base.transpose(0, 1);
    const file = path.join(dir, "view.safetensors");
    saveSafetensors(file, { t: transposed });
    const back = loadSafetensors(file).get("t")!;
    assert.deepEqual(back.shape, [3, 2]);
    assert.deepEqual(back.toArray(), [
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
    dispose([base, transposed, back]);
  });

  it("keeps metadata and reads single tensors lazily by name", () => {
    const file = path.join(dir, "meta.safetensors");
    const a = randn([4, 4]);
    const b = tensor([1, 2, 3], { dtype: "int64" });
    saveSafetensors(
      file,
      new Map([
        ["a", a],
        ["b", b],
      ]),
      { format: "pt", note: "é ünïcode" },
    );
    const opened = SafetensorsFile.open(file);
    assert.deepEqual(opened.metadata, { format: "pt", note: "é ünïcode" });
    assert.deepEqual(opened.entry("b"), { name: "b", dtype: "int64", shape: [3], begin: 0, end: 24 });
    const bBack = opened.read("b");
    assert.deepEqual(bBack.toArray(), [1, 2, 3]);
    assert.throws(() => opened.read("c"), /no tensor named "c"/);
    opened.close();
    assert.throws(() => opened.read("a"), /read after close/);
    dispose([a, b, bBack]);
  });
});

describe("safetensors byte format", () => {
  // Expected bytes from the reference implementation's own tests (huggingface/safetensors).
  it("matches HF's serialization of one F32 tensor [1,2,3]", () => {
    const file = path.join(dir, "hf1.safetensors");
    const t = tensor([0, 1, 2, 3, 4, 5]).reshape(1, 2, 3);
    saveSafetensors(file, { "attn.0": t });
    const expected = Buffer.from([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44,
      34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34,
      58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    assert.deepEqual(fs.readFileSync(file), expected);
    t.dispose();
  });

  it("pads the header with spaces to a multiple of 8 (HF's forced-alignment case)", () => {
    const file = path.join(dir, "hf2.safetensors");
    const t = tensor([0, 1, 2, 3, 4, 5]).reshape(1, 1, 2, 3);
    saveSafetensors(file, { attn0: t });
    const header = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ';
    assert.deepEqual(fs.readFileSync(file), safetensorsBytes(header, f32Bytes(0, 1, 2, 3, 4, 5)));
    t.dispose();
  });

  it("writes empty files and metadata exactly as HF does", () => {
    const empty = path.join(dir, "empty.safetensors");
    saveSafetensors(empty, {});
    assert.deepEqual(fs.readFileSync(empty), Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]));
    saveSafetensors(empty, {}, { framework: "pt" });
    assert.deepEqual(fs.readFileSync(empty), safetensorsBytes('{"__metadata__":{"framework":"pt"}}     '));
    assert.equal(SafetensorsFile.open(empty).keys().length, 0);
  });

  it("reads a hand-built file (HF's python test bytes) with its metadata", () => {
    const bytes = safetensorsBytes(
      '{"__metadata__":{"framework":"pt"},"test1":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}       ',
      [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
    );
    assert.equal(bytes.readUInt32LE(0), 102);
    const file = SafetensorsFile.fromBytes(bytes, "python.safetensors");
    assert.deepEqual(file.metadata, { framework: "pt" });
    const t = file.read("test1");
    assert.equal(t.dtype, "int32");
    assert.deepEqual(t.toArray(), [
      [1, 2],
      [3, -1],
    ]);
    t.dispose();
  });

  it("orders tensors by dtype alignment, then name, so every tensor's data is aligned", () => {
    const file = path.join(dir, "mixed.safetensors");
    const tensors = {
      b_u8: tensor([1, 2, 3], { dtype: "uint8" }),
      a_f16: tensor([1, 2, 3]).to("float16"),
      z_f64: tensor([1.5], { dtype: "float64" }),
      c_i64: tensor([7], { dtype: "int64" }),
      a_f32: tensor([1]),
      flag: tensor([true]),
    };
    saveSafetensors(file, tensors);
    const raw = fs.readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const header = JSON.parse(raw.subarray(8, 8 + n).toString());
    // the reference writer's dtype order: I64 > F64 > F32 > F16 > U8 > BOOL
    assert.deepEqual(Object.keys(header), ["c_i64", "z_f64", "a_f32", "a_f16", "b_u8", "flag"]);
    for (const name of Object.keys(header)) {
      const info = readSafetensorsHeader(file).tensors.get(name)!;
      assert.equal(info.begin % { int64: 8, float64: 8, float32: 4, float16: 2, uint8: 1, bool: 1 }[info.dtype as "int64"], 0, name);
    }
    dispose(tensors);
  });
});

describe("safetensors files on disk", () => {
  it("writes atomically: a failed write leaves the old file and no temp file", () => {
    const sub = path.join(dir, "atomic");
    fs.mkdirSync(sub);
    const file = path.join(sub, "w.safetensors");
    const t = tensor([1, 2]);
    saveSafetensors(file, { t });
    const before = fs.readFileSync(file);
    // fails after the header and the first tensor are already written to the temp file
    const failing = {
      dtype: "uint8",
      shape: [1],
      bytes: () => {
        throw new Error("device lost");
      },
    } as unknown as Tensor;
    assert.throws(() => saveSafetensors(file, { t, z: failing }), /device lost/);
    const short = { dtype: "float32", shape: [4], bytes: () => Buffer.alloc(3) } as unknown as Tensor;
    assert.throws(() => saveSafetensors(file, { s: short }), /tensor "s" gave 3 bytes, expected 16/);
    assert.deepEqual(fs.readFileSync(file), before);
    assert.deepEqual(fs.readdirSync(sub), ["w.safetensors"]);
    t.dispose();
  });

  it("reads one tensor from a multi-GB file without reading the rest", () => {
    // a sparse file: 3 GiB of declared data that never exists in memory
    const big = 3 * 2 ** 30;
    const header = JSON.stringify({
      huge: { dtype: "U8", shape: [big], data_offsets: [0, big] },
      tail: { dtype: "F32", shape: [2], data_offsets: [big, big + 8] },
    });
    const file = path.join(dir, "sparse.safetensors");
    const head = safetensorsBytes(header);
    const fd = fs.openSync(file, "w");
    fs.writeSync(fd, head);
    fs.writeSync(fd, f32Bytes(0.5, -2), 0, 8, head.length + big);
    fs.closeSync(fd);
    const opened = SafetensorsFile.open(file);
    assert.deepEqual(opened.entry("huge").shape, [big]);
    const tail = opened.read("tail");
    assert.deepEqual(tail.toArray(), [0.5, -2]);
    tail.dispose();
    opened.close();
    fs.rmSync(file);
  });

  it("names a missing file in its error", () => {
    assert.throws(() => SafetensorsFile.open(path.join(dir, "nope.safetensors")), /nope\.safetensors/);
  });
});
