import assert from "node:assert/strict";
import { test } from "node:test";
import { formatDuration, type ProgressStream, TrainingProgress } from "../../src/train/progress.js";

/** A stream that records what is written, and a clock the test moves by hand. */
function capture(isTTY = false): ProgressStream & { text: string } {
  const s = { text: "", isTTY, columns: 120, write: (chunk: string) => ((s.text += chunk), true) };
  return s;
}
function clock(): { now: () => number; advance: (seconds: number) => void } {
  let ms = 1_000_000;
  return { now: () => ms, advance: (seconds) => (ms += seconds * 1000) };
}

test("without a TTY, a plain line is printed every N steps and at the last step", () => {
  const stream = capture();
  const time = clock();
  const progress = new TrainingProgress({ totalSteps: 25, totalEpochs: 2, everySteps: 10, stream, now: time.now });
  for (let step = 1; step <= 25; step++) {
    time.advance(1);
    progress.update({ step, epoch: step <= 13 ? 1 : 2, loss: 2, tokens: 100 * step });
  }
  progress.stop();
  assert.deepEqual(stream.text.split("\n"), [
    "step 10/25 | epoch 1/2 | loss 2.0000 | 100 tok/s | elapsed 0:10 | ETA 0:15",
    "step 20/25 | epoch 2/2 | loss 2.0000 | 100 tok/s | elapsed 0:20 | ETA 0:05",
    "step 25/25 | epoch 2/2 | loss 2.0000 | 100 tok/s | elapsed 0:25 | ETA 0:00",
    "",
  ]);
});

test("without a TTY, slow steps print a line every few seconds, and stop() prints the last state", () => {
  const stream = capture();
  const time = clock();
  const progress = new TrainingProgress({ totalSteps: 100, everySteps: 50, everySeconds: 30, stream, now: time.now, label: "train svd" });
  for (let step = 1; step <= 7; step++) {
    time.advance(12);
    progress.update({ step, lr: 2e-4 });
  }
  progress.stop();
  progress.update({ step: 8 }); // after stop: ignored
  assert.deepEqual(stream.text.split("\n"), [
    "train svd step 3/100 | lr 2.00e-4 | elapsed 0:36 | ETA 19:24",
    "train svd step 6/100 | lr 2.00e-4 | elapsed 1:12 | ETA 18:48",
    "train svd step 7/100 | lr 2.00e-4 | elapsed 1:24 | ETA 18:36",
    "",
  ]);
});

test("the loss shown is a bias-corrected moving average", () => {
  const progress = new TrainingProgress({ totalSteps: 10, smoothing: 0.9, stream: capture() });
  assert.equal(progress.smoothedLoss, null);
  progress.update({ step: 1, loss: 1 });
  assert.ok(Math.abs(progress.smoothedLoss! - 1) < 1e-12);
  progress.update({ step: 2, loss: 2 });
  // (0.9·0.1 + 0.1·2) / (1 − 0.81)
  assert.ok(Math.abs(progress.smoothedLoss! - 0.29 / 0.19) < 1e-12);
});

test("a resumed run counts rates and ETA from where it started", () => {
  const stream = capture();
  const time = clock();
  const progress = new TrainingProgress({ totalSteps: 40, everySteps: 10, startStep: 20, startTokens: 5000, stream, now: time.now });
  time.advance(20);
  progress.update({ step: 30, tokens: 7000 });
  assert.equal(stream.text, "step 30/40 | 100 tok/s | elapsed 0:20 | ETA 0:20\n");
  progress.stop();
});

test("quiet mode prints nothing", () => {
  const stream = capture(true);
  const progress = new TrainingProgress({ totalSteps: 3, quiet: true, stream });
  for (let step = 1; step <= 3; step++) progress.update({ step, loss: 1 });
  progress.stop();
  assert.equal(stream.text, "");
});

test("on a TTY the cli-progress bar shows step/total and the stats", () => {
  const stream = capture(true);
  const progress = new TrainingProgress({ totalSteps: 8, totalEpochs: 1, stream });
  progress.update({ step: 3, epoch: 1, loss: 1.5, tokens: 30 });
  progress.stop();
  assert.match(stream.text, /3\/8 \| epoch 1\/1 \| loss 1\.5000/);
  const length = stream.text.length;
  progress.update({ step: 4 });
  assert.equal(stream.text.length, length, "nothing after stop");
});

test("durations read as m:ss or h:mm:ss", () => {
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(59.6), "1:00");
  assert.equal(formatDuration(3723), "1:02:03");
  assert.equal(formatDuration(NaN), "?");
});
