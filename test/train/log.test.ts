import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import {
  type EvalRow,
  formatReal,
  parseTrainingLog,
  readTrainingLog,
  type TrainRow,
  TrainingLogError,
  TrainingLogWriter,
  trainingLogPath,
} from "../../src/train/log.js";
import { tempDir as sharedTempDir } from "../helpers.js";

const tempDir = () => sharedTempDir("log");
const HEADER = "step,epoch,loss,lr,grad_norm,tokens,elapsed_s,eval_loss";

const trainRows: TrainRow[] = [
  { step: 1, epoch: 0.25, loss: Math.fround(Math.E), lr: 0, gradNorm: Math.fround(13.25), tokens: 512, elapsedS: 0.4567 },
  { step: 2, epoch: 0.5, loss: 2.5, lr: 5e-5, gradNorm: null, tokens: 1024, elapsedS: 0.9 },
  { step: 3, epoch: 0.75, loss: NaN, lr: 1e-4, gradNorm: Infinity, tokens: 1536, elapsedS: 1.2 },
  { step: 4, epoch: 1, loss: 1.0000001, lr: 2e-4, gradNorm: 0.125, tokens: 9_007_199_254_740_991, elapsedS: 3600.25 },
];
const evalRow: EvalRow = { step: 4, epoch: 1, evalLoss: Math.fround(1.75), tokens: 9_007_199_254_740_991, elapsedS: 3601 };

test("a written log reads back as the same rows, at float32 precision", () => {
  const file = trainingLogPath(path.join(tempDir(), "nested"), "random");
  assert.equal(path.basename(file), "training_log_random.csv");
  const log = new TrainingLogWriter(file);
  trainRows.forEach((r) => {
    log.writeTrain(r);
  });
  log.writeEval(evalRow);
  log.close();
  assert.throws(() => log.writeTrain(trainRows[0]), /closed/);

  const lines = fs.readFileSync(file, "utf8").split("\n");
  assert.deepEqual(lines, [
    HEADER,
    "1,0.25,2.7182817,0,13.25,512,0.457,",
    "2,0.5,2.5,0.00005,,1024,0.900,",
    "3,0.75,nan,0.0001,inf,1536,1.200,",
    "4,1,1.0000001,0.0002,0.125,9007199254740991,3600.250,",
    "4,1,,,,9007199254740991,3601.000,1.75",
    "",
  ]);

  const back = readTrainingLog(file);
  assert.equal(back.train.length, 4);
  back.train.forEach((row, i) => {
    const want = trainRows[i];
    assert.equal(row.step, want.step);
    assert.equal(row.tokens, want.tokens);
    assert.equal(row.epoch, want.epoch);
    for (const key of ["loss", "lr"] as const) assert.equal(Math.fround(row[key]), Math.fround(want[key]), `row ${i} ${key}`);
    assert.equal(row.gradNorm === null ? null : Math.fround(row.gradNorm), want.gradNorm === null ? null : Math.fround(want.gradNorm));
    assert.ok(Math.abs(row.elapsedS - want.elapsedS) <= 5e-4);
  });
  assert.deepEqual(back.eval, [evalRow]);
});

test("formatReal writes the shortest decimal that reads back to the same float32", () => {
  assert.equal(formatReal(0.1), "0.1");
  assert.equal(formatReal(Math.fround(0.1)), "0.1");
  assert.equal(formatReal(2e-4), "0.0002");
  assert.equal(formatReal(1e-7), "1e-7");
  assert.equal(formatReal(-Infinity), "-inf");
  let seed = 1;
  for (let i = 0; i < 2000; i++) {
    seed = (seed * 48271) % 2147483647;
    const x = Math.fround((seed / 2147483647 - 0.5) * 10 ** ((i % 16) - 8));
    const s = formatReal(x);
    assert.equal(Math.fround(Number(s)), x, `${x} written as ${s}`);
    assert.ok(s.replace(/^-?0?\.?0*|e.*$|\./g, "").length <= 9, `${s} is longer than needed`);
  }
});

test("each row is on disk as soon as it is written (a crash leaves a valid prefix)", () => {
  const file = path.join(tempDir(), "training_log_svd.csv");
  const log = new TrainingLogWriter(file);
  assert.equal(fs.readFileSync(file, "utf8"), `${HEADER}\n`);
  log.writeTrain(trainRows[0]);
  log.writeTrain(trainRows[1]);
  // Not closed: another reader sees both rows.
  assert.deepEqual(
    readTrainingLog(file).train.map((r) => r.step),
    [1, 2],
  );
  log.close();
});

test("a new writer starts the file afresh (a resumed run writes its earlier rows again, from its checkpoint)", () => {
  const file = path.join(tempDir(), "training_log_random.csv");
  const first = new TrainingLogWriter(file);
  first.writeTrain(trainRows[0]);
  first.close();
  new TrainingLogWriter(file).close();
  assert.equal(fs.readFileSync(file, "utf8"), `${HEADER}\n`);
});

test("malformed logs give errors that name the line and the problem", () => {
  const bad = (text: string, message: RegExp) =>
    assert.throws(
      () => parseTrainingLog(text, "x.csv"),
      (e: unknown) => e instanceof TrainingLogError && message.test(e.message),
    );
  bad("", /x\.csv: empty file/);
  bad("step,loss\n1,2\n", /x\.csv:1: header is 'step,loss'/);
  bad(`${HEADER}\n1,0,2.5,0.1,,10,1.0,\n2,0,2.4`, /x\.csv:3: expected 8 fields, found 3 \(truncated row\?\)/);
  bad(`${HEADER}\n1,0,abc,0.1,,10,1.0,\n`, /x\.csv:2: loss 'abc' is not a number/);
  bad(`${HEADER}\n1,0,,0.1,,10,1.0,\n`, /x\.csv:2: loss is empty/);
  bad(`${HEADER}\n1.5,0,2,0.1,,10,1.0,\n`, /step '1\.5' is not a whole number/);
  bad(`${HEADER}\n1,0,2,0.1,,-10,1.0,\n`, /tokens '-10' is not a whole number/);
  bad(`${HEADER}\n1,0,2,0.1,,10,1.0,1.9\n`, /x\.csv:2: loss must be empty on an eval row/);
  bad(`${HEADER}\n2,0,2,0.1,,10,1.0,\n1,0,2,0.1,,10,1.0,\n`, /x\.csv:3: step 1 comes after step 2/);
  bad(`${HEADER}\n2,0,2,0.1,,10,1.0,\n2,0,2,0.1,,10,1.0,\n`, /x\.csv:3: step 2 is logged twice/);
  // Windows line endings, a BOM, no final newline and Python-style infinities are fine.
  const ok = parseTrainingLog(`\uFEFF${HEADER}\r\n1,0,Infinity,1e-4,,10,1.0,\r\n1,0,,,,10,1.5,2`);
  assert.equal(ok.train[0].loss, Infinity);
  assert.equal(ok.train[0].lr, 1e-4);
  assert.equal(ok.eval[0].evalLoss, 2);
});
