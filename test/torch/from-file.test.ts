// fromFile: tensors read from an open file straight into their memory (CPU) or through pinned
// staging buffers (CUDA; SVDLORA_TEST_DEVICE=cuda runs these there).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { device, tempDir } from "../helpers.js";

const dir = tempDir("fromfile");

/** A file of `prefix` junk bytes followed by the bytes of each tensor; returns fd and offsets. */
function fileOf(name: string, prefix: number, tensors: torch.Tensor[]): { fd: number; offsets: number[] } {
  const parts: Buffer[] = [Buffer.alloc(prefix, 0xab)];
  const offsets: number[] = [];
  let at = prefix;
  for (const t of tensors) {
    const bytes = t.bytes();
    offsets.push(at);
    parts.push(bytes);
    at += bytes.length;
  }
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat(parts));
  const fd = fs.openSync(file, "r");
  after(() => fs.closeSync(fd));
  return { fd, offsets };
}

test("fromFile reads every dtype at any offset, onto the test device", () => {
  const tensors = [
    torch.arange(0, 37, 1, { dtype: "float32" }).div(3).reshape([37]),
    torch.tensor(
      [
        [0.5, -2, 3.25],
        [1e-3, 7, -0],
      ],
      { dtype: "bfloat16" },
    ),
    torch.tensor(
      [
        [1, -2],
        [2 ** 40, 5],
      ],
      { dtype: "int64" },
    ),
    torch.tensor([true, false, true]),
    torch.tensor([1, 2, 250], { dtype: "uint8" }),
    torch.tensor([0.1, 0.2], { dtype: "float64" }),
    torch.tensor(1.5, { dtype: "float16" }),
  ];
  const { fd, offsets } = fileOf("dtypes.bin", 13, tensors);
  tensors.forEach((t, i) => {
    const back = torch.fromFile(fd, offsets[i], t.bytes().length, t.shape, t.dtype, { device });
    assert.equal(back.dtype, t.dtype);
    assert.deepEqual(back.shape, t.shape);
    assert.match(back.device, new RegExp(`^${device}`));
    assert.deepEqual(back.toArray(), t.toArray(), `${t.dtype}`);
  });
  const empty = torch.fromFile(fd, 0, 0, [0, 4], "float32", { device });
  assert.deepEqual(empty.shape, [0, 4]);
});

test("fromFile splits a read into parallel blocks and staging chunks that need not divide it", () => {
  torch.manualSeed(3);
  const t = torch.randn([1000, 7]); // 28,000 bytes
  const { fd, offsets } = fileOf("chunks.bin", 5, [t]);
  const expected = Array.from(t.data() as Float32Array);
  for (const [chunkBytes, blockBytes] of [
    [4096, 1000],
    [28000, 28000],
    [999, 7],
    [1 << 20, 4096],
    [3, 1],
  ]) {
    const back = torch.fromFile(fd, offsets[0], 28000, [1000, 7], "float32", { device, chunkBytes, blockBytes });
    assert.deepEqual(Array.from(back.cpu().data() as Float32Array), expected, `chunk ${chunkBytes}, block ${blockBytes}`);
    back.dispose();
  }
});

test("fromFile reports a length that does not fit the shape, a short file and a bad descriptor", () => {
  const { fd } = fileOf("short.bin", 0, [torch.tensor([1, 2, 3])]); // 12 bytes
  assert.throws(() => torch.fromFile(fd, 0, 8, [3], "float32", { device }), /fromFile: 8 bytes given, shape and dtype need 12/);
  assert.throws(() => torch.fromFile(fd, 4, 12, [3], "float32", { device }), /the file ended at byte 12 while reading/);
  assert.throws(
    () => torch.fromFile(fd, 4, 12, [3], "float32", { device, chunkBytes: 4, blockBytes: 4 }),
    /the file ended at byte 12 while reading/,
  );
  assert.throws(() => torch.fromFile(fd, -1, 12, [3], "float32"), /position must be non-negative/);
  const closed = fs.openSync(path.join(dir, "short.bin"), "r");
  fs.closeSync(closed);
  assert.throws(() => torch.fromFile(closed, 0, 12, [3], "float32", { device }), /reading the file failed: Bad file descriptor/);
});
