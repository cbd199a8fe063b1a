// Each kind of damaged or hostile file gives its own clear error, naming the file.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { findDuplicateKey } from "../../src/hf/json-duplicates.js";
import { SafetensorsFile, SafetensorsFormatError, nonFiniteCount } from "../../src/hf/safetensors.js";
import * as torch from "../../src/torch/index.js";
import { f32Bytes, safetensorsBytes, tempDir } from "./fixtures.js";

const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
const json = (header: object) => JSON.stringify(header);

function rejects(bytes: Uint8Array, message: RegExp): void {
  assert.throws(
    () => SafetensorsFile.fromBytes(bytes, "bad.safetensors"),
    (error: unknown) => {
      assert.ok(error instanceof SafetensorsFormatError, `expected SafetensorsFormatError, got ${error}`);
      assert.match(error.message, /^bad\.safetensors: not a valid safetensors file: /);
      assert.match(error.message, message);
      assert.ok(!error.message.includes("\n"), "one line");
      return true;
    },
  );
}

describe("hostile safetensors files", () => {
  it("accepts the valid base case used below", () => {
    const file = SafetensorsFile.fromBytes(safetensorsBytes(json({ a: entry("F32", [2], [0, 8]) }), f32Bytes(1, 2)));
    assert.deepEqual(file.keys(), ["a"]);
    const nullMetadata = SafetensorsFile.fromBytes(
      safetensorsBytes(json({ __metadata__: null, a: entry("F32", [2], [0, 8]) }), f32Bytes(1, 2)),
    );
    assert.equal(nullMetadata.metadata, undefined, "null metadata is HF's way of writing none");
  });

  it("file shorter than 8 bytes", () => {
    rejects(Buffer.from([1, 0, 0]), /3 bytes long, shorter than the 8-byte header length/);
    rejects(Buffer.alloc(0), /0 bytes long/);
  });

  it("header length beyond the file", () => {
    const bytes = safetensorsBytes(json({}));
    bytes.writeBigUInt64LE(1000n, 0);
    rejects(bytes, /header length 1000 runs past the end of the file \(10 bytes\)/);
  });

  it("absurdly large header length (> 100 MB), including values above 2^53", () => {
    const bytes = safetensorsBytes(json({}));
    bytes.writeBigUInt64LE(100_000_001n, 0);
    rejects(bytes, /header length 100000001 exceeds the 100000000-byte limit/);
    bytes.writeBigUInt64LE(2n ** 64n - 1n, 0);
    rejects(bytes, /header length 18446744073709551615 exceeds/);
  });

  it("header that is not UTF-8, not JSON, or not an object", () => {
    rejects(safetensorsBytes("", []), /not valid JSON/);
    const invalidUtf8 = safetensorsBytes("{}  ");
    invalidUtf8[9] = 0xff;
    rejects(invalidUtf8, /not valid UTF-8/);
    rejects(safetensorsBytes('{"a": '), /not valid JSON/);
    rejects(safetensorsBytes(`{"a":\n\n x${" ".repeat(1000)}}`), /not valid JSON \(.{1,200}\) \(damaged/);
    rejects(safetensorsBytes("[1, 2]"), /not a JSON object/);
    rejects(safetensorsBytes("null"), /not a JSON object/);
    rejects(safetensorsBytes('"text"'), /not a JSON object/);
  });

  it("unknown and unsupported dtypes", () => {
    rejects(safetensorsBytes(json({ a: entry("F33", [1], [0, 4]) }), [0, 0, 0, 0]), /tensor "a" has unknown dtype "F33"/);
    rejects(safetensorsBytes(json({ a: entry("__proto__", [1], [0, 4]) }), [0, 0, 0, 0]), /unknown dtype "__proto__"/);
    rejects(safetensorsBytes(json({ a: entry("I8", [1], [0, 1]) }), [0]), /dtype I8, which svdlora does not support/);
    rejects(safetensorsBytes(json({ a: { shape: [1], data_offsets: [0, 1] } }), [0]), /tensor "a" has no dtype string/);
    rejects(safetensorsBytes(json({ a: [1, 2] })), /tensor "a" is not an object/);
  });

  it("shape that is not a list of non-negative integers", () => {
    for (const shape of [[-1], [1.5], ["2"], 4, null, [2 ** 60]]) {
      rejects(
        safetensorsBytes(json({ a: entry("U8", shape, [0, 0]) })),
        /tensor "a" has shape .*, not a list of non-negative integers|needs/,
      );
    }
    rejects(safetensorsBytes(json({ a: entry("U8", [-1], [0, 0]) })), /has shape \[-1\], not a list of non-negative integers/);
    rejects(safetensorsBytes('{"a":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}'), /has shape \[0\], not a list/);
  });

  it("data_offsets missing, negative, out of range or reversed", () => {
    rejects(
      safetensorsBytes(json({ a: { dtype: "U8", shape: [1] } }), [0]),
      /tensor "a" has data_offsets undefined, not a \[begin, end\] pair/,
    );
    rejects(safetensorsBytes(json({ a: entry("U8", [1], [0]) }), [0]), /not a \[begin, end\] pair/);
    rejects(safetensorsBytes(json({ a: entry("U8", [1], [-1, 0]) }), [0]), /data_offsets \[-1,0\]: they must be non-negative integers/);
    rejects(safetensorsBytes(json({ a: entry("U8", [1], [0, 1e400]) }), [0]), /must be non-negative integers/);
    rejects(safetensorsBytes(json({ a: entry("U8", [1], [4, 5]) }), [0, 0]), /data_offsets \[4, 5\] past the end of the data \(2 bytes\)/);
    rejects(safetensorsBytes(json({ a: entry("U8", [0], [1, 0]) }), [0]), /data_offsets \[1, 0\]: end is before begin/);
  });

  it("byte count that disagrees with dtype × shape", () => {
    rejects(
      safetensorsBytes(json({ a: entry("F32", [2, 2], [0, 8]) }), f32Bytes(1, 2)),
      /tensor "a" has 8 bytes of data but dtype F32 × shape \[2,2\] needs 16/,
    );
    rejects(safetensorsBytes(json({ a: entry("BF16", [2 ** 26, 2 ** 26, 4], [0, 8]) }), f32Bytes(1, 2)), /needs/);
  });

  it("overlapping tensors", () => {
    const header = json({ a: entry("F32", [2], [0, 8]), b: entry("F32", [1], [4, 8]) });
    rejects(safetensorsBytes(header, f32Bytes(1, 2)), /tensors "a" and "b" overlap \(bytes 0-8 and 4-8\)/);
  });

  it("duplicate keys, at the top level and inside a tensor entry", () => {
    const dupTensor = '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    rejects(safetensorsBytes(dupTensor, [0, 0]), /the header has the key "a" twice \(/);
    const dupField = '{"a":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}}';
    rejects(safetensorsBytes(dupField, [0]), /the key "dtype" twice inside "a"/);
    // the same key spelled with an escape is still the same key
    const escaped = '{"ab":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a\\u0062":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    rejects(safetensorsBytes(escaped, [0, 0]), /the key "ab" twice/);
  });

  it("__metadata__ that is not an object of strings", () => {
    rejects(safetensorsBytes(json({ __metadata__: { n: 1 } })), /"__metadata__" value for "n" is not a string/);
    rejects(safetensorsBytes(json({ __metadata__: [] })), /"__metadata__" is not an object of strings/);
  });

  it("a file truncated after opening is reported when a tensor is read", () => {
    const dir = tempDir();
    const file = path.join(dir, "shrinks.safetensors");
    fs.writeFileSync(file, safetensorsBytes(json({ a: entry("F32", [2], [0, 8]) }), f32Bytes(1, 2)));
    const opened = SafetensorsFile.open(file);
    fs.truncateSync(file, fs.statSync(file).size - 4);
    assert.throws(() => opened.read("a"), /shrinks\.safetensors: .*the file ended at byte \d+ while reading/);
    opened.close();
  });
});

describe("findDuplicateKey", () => {
  it("finds duplicates at any depth and ignores keys in strings and arrays", () => {
    assert.equal(findDuplicateKey('{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}],"d":"\\"a\\":"}'), undefined);
    assert.deepEqual(findDuplicateKey('{"a":1,"b":[{"x":1,"x":2}]}'), { key: "x", path: ["b", "[]"] });
    assert.deepEqual(findDuplicateKey('{"a":{"b":{"c":1,"c":2}}}'), { key: "c", path: ["a", "b"] });
    assert.deepEqual(findDuplicateKey('{ "k" : 1 , "k" : 2 }'), { key: "k", path: [] });
  });
});

describe("weights files that are not regular files, or whose values are not weights", () => {
  const dir = tempDir();

  it("a folder or a FIFO given as the weights file is refused at once, naming it", (t) => {
    const folder = path.join(dir, "model.safetensors");
    fs.mkdirSync(folder);
    assert.throws(
      () => SafetensorsFile.open(folder),
      (e: Error) => e.message === `${folder}: is a folder, not the safetensors file (a regular file)`,
    );
    const fifo = path.join(dir, "pipe.safetensors");
    if (spawnSync("mkfifo", [fifo]).status !== 0) return t.skip("mkfifo is not available");
    assert.throws(() => SafetensorsFile.open(fifo), /pipe\.safetensors: is a named pipe \(FIFO\), not the safetensors file/);
  });

  it("readWeight refuses NaN, infinities and integer or boolean dtypes; read() keeps them", () => {
    const header = json({
      finite: entry("F32", [2], [0, 8]),
      nan: entry("F32", [3], [8, 20]),
      ints: entry("U8", [4], [20, 24]),
      flags: entry("BOOL", [4], [24, 28]),
      empty: entry("F32", [0], [28, 28]),
    });
    const data = Buffer.concat([f32Bytes(1, 2), f32Bytes(1, Number.NaN, Number.NEGATIVE_INFINITY), Buffer.from([1, 2, 3, 4, 1, 0, 1, 0])]);
    const file = SafetensorsFile.fromBytes(safetensorsBytes(header, data), "w.safetensors");
    torch.dispose([file.readWeight("finite"), file.readWeight("empty"), file.read("nan"), file.read("ints")]);
    assert.throws(
      () => file.readWeight("nan"),
      /^Error: w\.safetensors: tensor "nan" holds 2 NaN or infinite values \(of 3\): the file is damaged or its training diverged$/,
    );
    assert.throws(
      () => file.readWeight("ints"),
      /w\.safetensors: tensor "ints" has dtype U8; weights must be floating point \(F32, F16, BF16 or F64\)/,
    );
    assert.throws(() => file.readWeight("flags"), /tensor "flags" has dtype BOOL/);
  });

  it("counts exactly when a float16 sum overflows although every value is finite", () => {
    const ones = torch.ones([100_000]).to("float16");
    assert.equal(
      torch.tidy(() => ones.sum().item()),
      Number.POSITIVE_INFINITY,
      "the fast check overflows",
    );
    assert.equal(nonFiniteCount(ones), 0);
    ones.narrow(0, 5, 1).fill_(Number.NaN);
    assert.equal(nonFiniteCount(ones), 1);
    ones.dispose();
  });
});
