// The run log writes each row to the CSV, the JSONL and a TensorBoard event file; the event file
// is read back here by a reader of its own (tfevents-reader.ts), CRCs checked.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { readTrainingLog } from "../../src/train/log.js";
import { RunLog, type RunRow, type StepRecord, runLogFiles, runRows } from "../../src/train/run-log.js";
import { crc32c, eventFileName, maskedCrc32c, scalarsEvent, tfRecord } from "../../src/train/tfevents.js";
import { tempDir } from "../helpers.js";
import { crc32cBitwise, decodeEvent, readEventFile, readRecords } from "./tfevents-reader.js";

const dir = tempDir("run-log");

test("CRC-32C: the standard check value, and the table agrees with a bitwise reference", () => {
  const check = Buffer.from("123456789", "ascii");
  assert.equal(crc32c(check), 0xe3069283);
  assert.equal(crc32cBitwise(check), 0xe3069283);
  for (const n of [0, 1, 7, 8, 255, 1000]) {
    const data = Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + n) & 0xff));
    assert.equal(crc32c(data), crc32cBitwise(data), `length ${n}`);
  }
  // The mask rotates right by 15 and adds a constant.
  const c = crc32c(check);
  assert.equal(maskedCrc32c(check), ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) % 2 ** 32);
});

test("a record is length, its CRC, the data, its CRC; an event decodes to what was written", () => {
  const event = scalarsEvent(1_700_000_000.25, 300, [
    ["train/loss", 2.5],
    ["eval/loss", Math.fround(0.1)],
  ]);
  const record = tfRecord(event);
  assert.equal(record.length, 8 + 4 + event.length + 4);
  assert.equal(record.readBigUInt64LE(0), BigInt(event.length));
  const [data] = readRecords(record);
  assert.deepEqual(data, event);
  const decoded = decodeEvent(data);
  assert.equal(decoded.wallTime, 1_700_000_000.25);
  assert.equal(decoded.step, 300); // a two-byte varint
  assert.deepEqual(
    [...decoded.scalars],
    [
      ["train/loss", 2.5],
      ["eval/loss", Math.fround(0.1)],
    ],
  );
  // A flipped byte in the data fails its CRC.
  const damaged = Buffer.from(record);
  damaged[14] ^= 1;
  assert.throws(() => readRecords(damaged), /data CRC/);
  assert.match(eventFileName(1_700_000_000.9), /^events\.out\.tfevents\.1700000000\.[\w.-]+\.\d+$/);
});

const record = (i: number): StepRecord => ({
  loss: 3 - i / 2,
  lr: 1e-4 * (i + 1),
  gradNorm: i === 2 ? Number.NaN : 0.5 + i,
  tokens: 100 + i,
  targets: 50,
  elapsedS: 1.5 * (i + 1),
  seconds: 0.5,
  time: 1_800_000_000 + i,
});

test("every row goes to the CSV, the JSONL and the event file, with the same values", () => {
  const history = [0, 1, 2, 3].map(record);
  const evals = [
    { step: 0, epoch: 0, loss: 3.25, tokens: 0, elapsedS: 0.25, time: 1_799_999_999 },
    { step: 2, epoch: 1, loss: 2.125, tokens: 201, elapsedS: 3.5, time: 1_800_000_001.5 },
    { step: 4, epoch: 2, loss: 1.5, tokens: 406, elapsedS: 6.5, time: 1_800_000_003.5 },
  ];
  const rows = runRows(history, evals, 2);
  assert.deepEqual(
    rows.map((r) => `${r.kind}${r.step}`),
    ["eval0", "train1", "train2", "eval2", "train3", "train4", "eval4"],
  );
  const files = runLogFiles(path.join(dir, "one"));
  const log = new RunLog(files);
  for (const row of rows) log.write(row);
  log.close();

  const csv = readTrainingLog(files.csv);
  assert.deepEqual(
    csv.train.map((r) => [r.step, r.epoch, r.tokens]),
    [
      [1, 0.5, 100],
      [2, 1, 201],
      [3, 1.5, 303],
      [4, 2, 406],
    ],
  );
  assert.ok(Number.isNaN(csv.train[2].gradNorm));

  const jsonl = fs
    .readFileSync(files.jsonl, "utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(jsonl.length, rows.length);
  assert.deepEqual(jsonl[0], { step: 0, epoch: 0, eval_loss: 3.25, tokens: 0, elapsed_s: 0.25 });
  assert.deepEqual(jsonl[1], {
    step: 1,
    epoch: 0.5,
    loss: 3,
    lr: 0.0001,
    grad_norm: 0.5,
    tokens: 100,
    elapsed_s: 1.5,
    tokens_per_second: 200,
  });
  // NaN has no JSON number: null; the CSV keeps "nan".
  assert.equal(jsonl[4].grad_norm, null);
  // Every CSV field is in the JSONL, at the CSV's precision.
  csv.train.forEach((r, i) => {
    const j = jsonl.find((x) => x.step === r.step && "loss" in x);
    assert.deepEqual([j.loss, j.lr, j.tokens, j.elapsed_s], [r.loss, r.lr, r.tokens, r.elapsedS], `step ${i + 1}`);
  });

  const eventFiles = fs.readdirSync(files.tensorboard);
  assert.equal(eventFiles.length, 1);
  assert.match(eventFiles[0], /^events\.out\.tfevents\./);
  const [version, ...events] = readEventFile(path.join(files.tensorboard, eventFiles[0]));
  assert.equal(version.fileVersion, "brain.Event:2");
  assert.equal(events.length, rows.length);
  events.forEach((e, i) => {
    const row = rows[i] as RunRow;
    assert.equal(e.step, row.step);
    assert.equal(e.wallTime, row.time);
    if (row.kind === "eval") {
      assert.deepEqual([...e.scalars], [["eval/loss", Math.fround(row.evalLoss)]]);
      return;
    }
    assert.equal(e.scalars.get("train/loss"), Math.fround(row.loss));
    assert.equal(e.scalars.get("train/learning_rate"), Math.fround(row.lr));
    assert.equal(e.scalars.get("train/epoch"), Math.fround(row.epoch));
    assert.equal(e.scalars.get("train/tokens_per_second"), Math.fround(row.tokensPerSecond));
    if (Number.isNaN(row.gradNorm)) assert.ok(Number.isNaN(e.scalars.get("train/grad_norm")));
    else assert.equal(e.scalars.get("train/grad_norm"), Math.fround(row.gradNorm!));
  });
});
