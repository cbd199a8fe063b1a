import assert from "node:assert/strict";
import { test } from "node:test";
import { formatDuration, type ProgressStream, TrainingProgress, terminalEvents } from "../../src/cli/progress.js";

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
    "step 10/25 | ep 1/2 loss 2.0000 100 tok/s 0:10<0:15",
    "step 20/25 | ep 2/2 loss 2.0000 100 tok/s 0:20<0:05",
    "step 25/25 | ep 2/2 loss 2.0000 100 tok/s 0:25<0:00",
    "",
  ]);
});

test("without a TTY, a phase prints a line, and the return to training (an empty phase) none", () => {
  const stream = capture();
  const events = terminalEvents(stream);
  events.start?.({ label: "train random", totalSteps: 4, totalEpochs: 1, startStep: 0, startTokens: 0 });
  events.phase?.("evaluating", "held-out loss, 4 samples");
  events.phase?.("training");
  assert.equal(stream.text, "train random evaluating held-out loss, 4 samples…\n");
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
    "train svd step 3/100 | lr 2.0e-4 0:36<19:24",
    "train svd step 6/100 | lr 2.0e-4 1:12<18:48",
    "train svd step 7/100 | lr 2.0e-4 1:24<18:36",
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
  assert.equal(stream.text, "step 30/40 | 100 tok/s 0:20<0:20\n");
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
  assert.match(stream.text, /3\/8 ep 1\/1 loss 1\.5000/);
  const length = stream.text.length;
  progress.update({ step: 4 });
  assert.equal(stream.text.length, length, "nothing after stop");
});

test("at 80 columns the whole bar line fits, and the phase shows while no step moves", () => {
  const stream = capture(true);
  stream.columns = 80;
  const events = terminalEvents(stream, {});
  events.phase?.("loading", "models/tiny-prob");
  events.start?.({ label: "train random", totalSteps: 105, totalEpochs: 5, startStep: 0, startTokens: 0 });
  events.step?.({ step: 21, epoch: 1, loss: 0.4651, lr: 1.6e-4, gradNorm: 1, tokens: 12345 });
  events.phase?.("evaluating", "held-out loss, 240 samples");
  events.end?.();
  // Each render starts at column 1 (ESC[1G) and overwrites the last: one screen line per render.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal's escape codes are what is stripped here
  const screen = stream.text.replaceAll("\x1B[1G", "\r").replace(/\x1B\[[0-9;?]*[A-Za-z]|\x1B[78]/g, "");
  assert.match(screen, /^loading models\/tiny-prob…$/m);
  assert.match(screen, /evaluating held-out loss, 240 samples…/);
  const bars = screen.split(/[\r\n]/).filter((l) => l.includes("21/105"));
  assert.ok(bars.length > 0);
  for (const line of bars) assert.ok(line.length <= 80, `${line.length} columns: ${line}`);
});

test("a long run name is shortened so that the bar and the plain lines still fit 80 columns", () => {
  const label = "train gaussian-s10";
  const tty = capture(true);
  tty.columns = 80;
  const bar = new TrainingProgress({ totalSteps: 1000, totalEpochs: 10, label, stream: tty });
  bar.update({ step: 999, epoch: 9.99, loss: 0.4651, lr: 1.6e-4, tokens: 1_234_567 });
  bar.stop();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal's escape codes are what is stripped here
  const screen = tty.text.replaceAll("\x1B[1G", "\r").replace(/\x1B\[[0-9;?]*[A-Za-z]|\x1B[78]/g, "");
  const lines = screen.split(/[\r\n]/).filter((l) => l.includes("999/1000"));
  assert.ok(lines.length > 0);
  for (const line of lines) assert.ok(line.length <= 80, `${line.length} columns: ${line}`);
  assert.match(lines[0], /^…ussian-s10 \[/);

  const plain = capture();
  const time = clock();
  const progress = new TrainingProgress({ totalSteps: 1000, totalEpochs: 10, label, stream: plain, everySteps: 1, now: time.now });
  time.advance(3600);
  progress.update({ step: 999, epoch: 9.99, loss: 0.4651, lr: 1.6e-4, tokens: 123_456_789 });
  const line = plain.text.trimEnd();
  assert.ok(line.length <= 80, `${line.length} columns: ${line}`);
  // Too long for 48 columns of stats: the learning rate gives way, the time and ETA stay.
  assert.match(line, /^…in gaussian-s10 step 999\/1000 \| ep 9\.99\/10 loss 0\.4651 34294 tok\/s 1:00:00<0:04$/);
});

test("durations read as m:ss or h:mm:ss", () => {
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(59.6), "1:00");
  assert.equal(formatDuration(3723), "1:02:03");
  assert.equal(formatDuration(NaN), "?");
});
