// What a training run leaves to watch and compare it by, on the embedded tiny model: the JSONL
// log and the TensorBoard events agree with the CSV row for row, trainer_state.json is what
// Hugging Face's TrainerState reads, and a run stopped and resumed leaves the same logs (one
// event file, every step once) as a run never stopped.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { type TrainRunResult, trainRun } from "../../src/pipeline/train.js";
import { InterruptedError } from "../../src/train/events.js";
import { readTrainingLog } from "../../src/train/log.js";
import type { LoraTrainingSettings } from "../../src/train/settings.js";
import { onFilesystemChange } from "../../src/util/outputs.js";
import { dataSubset, tempDir } from "../helpers.js";
import { smallModel } from "../small-model.js";
import { type DecodedEvent, readEventFile } from "./tfevents-reader.js";

const dir = tempDir("tracking");
const base: Partial<LoraTrainingSettings> = {
  trainData: dataSubset(EMBEDDED_TRAIN, 12, dir, "train.json"),
  evalData: dataSubset(EMBEDDED_EVAL, 4, dir, "eval.json"),
  // The small model, samples cut at 128 tokens (every prompt fits): the logs matter here, not the model's size or the samples' length.
  baseModel: smallModel(dir),
  maxLength: 128,
  epochs: 2,
  batchSize: 4,
  evalSteps: 2,
  learningRate: 1e-3,
  loraRank: 4,
  quiet: true,
};
const out = (name: string) => path.join(dir, name);
const f = (x: number | null) => Math.fround(x!);

const jsonlRows = (file: string) =>
  fs
    .readFileSync(file, "utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number | null>);

function events(r: TrainRunResult): DecodedEvent[] {
  const files = fs.readdirSync(r.tensorboardDir);
  assert.equal(files.length, 1, `one event file in ${r.tensorboardDir}: ${files}`);
  const [version, ...rest] = readEventFile(path.join(r.tensorboardDir, files[0]));
  assert.equal(version.fileVersion, "brain.Event:2");
  return rest;
}

/** What must not depend on whether the run was stopped: steps, epochs, losses, learning rates, tokens. */
const numbersOf = (rows: Record<string, number | null>[]) => rows.map(({ elapsed_s: _e, tokens_per_second: _t, ...rest }) => rest);

let reference: TrainRunResult;
/** The last checkpoint's trainer_state.json, read before the run's commit removes the checkpoint. */
let trainerState = "";
before(async () => {
  const file = path.join(out("reference"), "checkpoints", "random", "trainer_state.json");
  onFilesystemChange(() => {
    if (fs.existsSync(file)) trainerState = fs.readFileSync(file, "utf8");
  });
  try {
    reference = await trainRun({ ...base, outputDir: out("reference"), saveSteps: 1 });
  } finally {
    onFilesystemChange(null);
  }
});

test("the JSONL and the TensorBoard events hold the CSV's rows, and tokens/s", () => {
  const csv = readTrainingLog(reference.logPath);
  assert.equal(path.basename(reference.jsonlPath), "training_log_random.jsonl");
  assert.equal(path.relative(out("reference"), reference.tensorboardDir), path.join("tensorboard", "random"));
  const rows = jsonlRows(reference.jsonlPath);
  const trainRows = rows.filter((r) => "loss" in r);
  const evalRows = rows.filter((r) => "eval_loss" in r);
  assert.equal(trainRows.length, reference.steps);
  assert.deepEqual(
    evalRows.map((r) => r.step),
    csv.eval.map((r) => r.step),
  );
  csv.train.forEach((c, i) => {
    const j = trainRows[i];
    assert.deepEqual(
      [j.step, j.epoch, j.loss, j.lr, j.grad_norm, j.tokens, j.elapsed_s],
      [c.step, c.epoch, c.loss, c.lr, c.gradNorm, c.tokens, c.elapsedS],
    );
    assert.ok(j.tokens_per_second! > 0, `tokens/s of step ${c.step}`);
  });

  const ev = events(reference);
  assert.equal(ev.length, rows.length);
  const train = ev.filter((e) => e.scalars.has("train/loss"));
  assert.deepEqual(
    train.map((e) => [e.step, e.scalars.get("train/loss"), e.scalars.get("train/learning_rate"), e.scalars.get("train/grad_norm")]),
    csv.train.map((c) => [c.step, f(c.loss), f(c.lr), f(c.gradNorm)]), // the CSV's decimals read back to the events' float32s
  );
  assert.deepEqual(
    train.map((e) => e.scalars.get("train/tokens_per_second")),
    trainRows.map((j) => f(j.tokens_per_second)),
  );
  assert.deepEqual(
    ev.filter((e) => e.scalars.has("eval/loss")).map((e) => [e.step, e.scalars.get("eval/loss")]),
    csv.eval.map((c) => [c.step, f(c.evalLoss)]),
  );
  // Wall times go forward and are today's, not seconds since the run started.
  const times = ev.map((e) => e.wallTime);
  assert.ok(times.every((t, i) => i === 0 || t >= times[i - 1]));
  assert.ok(Math.abs(times[0] - Date.now() / 1000) < 3600);
});

test("trainer_state.json has only Hugging Face TrainerState's fields, with the log history", () => {
  const state = JSON.parse(trainerState);
  // TrainerState.load_from_json is cls(**json): any other key is an error there.
  const TRAINER_STATE_FIELDS = ["epoch", "global_step", "max_steps", "num_train_epochs", "log_history"];
  assert.deepEqual(Object.keys(state).sort(), [...TRAINER_STATE_FIELDS].sort());
  assert.deepEqual([state.global_step, state.max_steps, state.num_train_epochs, state.epoch], [6, 6, 2, 2]);
  // The same rows as the run log (which writes at float32 precision).
  assert.deepEqual(
    state.log_history.map((h: Record<string, number>) =>
      "eval_loss" in h ? [h.step, f(h.eval_loss)] : [h.step, f(h.loss), f(h.learning_rate), f(h.grad_norm)],
    ),
    jsonlRows(reference.jsonlPath).map((r) => ("eval_loss" in r ? [r.step, f(r.eval_loss)] : [r.step, f(r.loss), f(r.lr), f(r.grad_norm)])),
  );
});

test("stopped after step 3 and resumed: the same CSV, JSONL and events as the run never stopped", async () => {
  const stop = new AbortController();
  const settings = { ...base, outputDir: out("stopped"), saveSteps: 1 };
  await assert.rejects(
    trainRun(settings, { signal: stop.signal, events: { step: (s) => s.step === 3 && stop.abort() } }),
    InterruptedError,
  );
  const resumedAt = Date.now() / 1000;
  const resumed = await trainRun({ ...settings, resume: true });
  assert.equal(resumed.resumedFrom, 3);
  const csvNumbers = (file: string) => {
    const log = readTrainingLog(file);
    return [...log.train, ...log.eval].map(({ elapsedS: _, ...rest }) => rest);
  };
  assert.deepEqual(csvNumbers(resumed.logPath), csvNumbers(reference.logPath));
  assert.deepEqual(numbersOf(jsonlRows(resumed.jsonlPath)), numbersOf(jsonlRows(reference.jsonlPath)));
  // The first session's rows keep their wall times; each step is in the events once.
  const trainEvents = events(resumed).filter((e) => e.scalars.has("train/loss"));
  assert.deepEqual(
    trainEvents.map((e) => [e.step, e.wallTime < resumedAt]),
    [1, 2, 3, 4, 5, 6].map((step) => [step, step <= 3]),
  );
  const scalars = (ev: DecodedEvent[]) => ev.map((e) => [e.step, ...[...e.scalars].filter(([tag]) => tag !== "train/tokens_per_second")]);
  assert.deepEqual(scalars(events(resumed)), scalars(events(reference)));
});
