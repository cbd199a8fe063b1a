// The three runs that test/train/concurrent.test.ts and its worker train alone and together, and
// how two runs' outputs compare (also the experiment's runs, test/pipeline/experiment.test.ts).
import fs from "node:fs";
import path from "node:path";
import { loadSafetensors } from "../../src/hf/safetensors.js";
import { EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../../src/paths.js";
import * as torch from "../../src/torch/index.js";
import type { LoraTrainingSettings } from "../../src/train/settings.js";
import { dataSubset } from "../helpers.js";
import { smallModel } from "../small-model.js";

/** Random init (seed 1), PiSSA (seed 2, its W is rewritten alone), and random with another seed and learning rate. */
export const ARMS: Partial<LoraTrainingSettings>[] = [
  { init: "random", seed: 1 },
  { init: "pissa", seed: 2 },
  { init: "random", seed: 3, learningRate: 5e-4 },
];

/** The runs' shared settings, with their data (`samples` training samples, 4 held out) written into dir. */
export function baseSettings(dir: string, samples: number): Partial<LoraTrainingSettings> {
  return {
    trainData: dataSubset(EMBEDDED_TRAIN, samples, dir, "train.json"),
    evalData: dataSubset(EMBEDDED_EVAL, 4, dir, "eval.json"),
    epochs: 2,
    batchSize: 4,
    learningRate: 1e-3,
    saveSteps: 1,
    quiet: true,
  };
}

/**
 * The settings of the CPU test and its worker: the small model (test/small-model.ts), 4 training
 * samples in 2 epochs of 2 steps (batch 2), held-out loss at steps 0, 2 and 4. Samples are cut at
 * 128 tokens, which every prompt fits in (so each keeps reply tokens). The model's size and the
 * samples' length do not matter to what the test compares; their cost does.
 */
export const cpuSettings = (dir: string): Partial<LoraTrainingSettings> => ({
  ...baseSettings(dir, 4),
  baseModel: smallModel(dir),
  batchSize: 2,
  maxLength: 128,
});

/** The folders of run i of a group ("alone", "together", …) under dir: its run folder and its checkpoint's. */
export const runFolders =
  (dir: string) =>
  (what: string, i: number): { dir: string; checkpointDir: string } => ({
    dir: path.join(dir, `${what}${i}`),
    checkpointDir: path.join(dir, `${what}${i}-checkpoint`),
  });

export interface Comparison {
  /** Rows of the two logs (train and eval rows). */
  rows: [number, number];
  /** Whether the logs' loss and eval_loss columns are the same text, row by row. */
  lossesEqual: boolean;
  /** Largest |a − b| / |a| over the two logs' losses and held-out losses. */
  lossRel: number;
  /** Whether every adapter tensor is bitwise equal. */
  adapterEqual: boolean;
  /** Largest ‖a − b‖ / ‖a‖ (Frobenius) over the adapter's tensors. */
  adapterRel: number;
}

const lossColumns = (log: string) =>
  fs
    .readFileSync(log, "utf8")
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => {
      const c = line.split(",");
      return [c[0], c[2], c[7]];
    });

/** A run's training log and its adapter's weights file. */
export interface RunFiles {
  log: string;
  adapter: string;
}

const runFolder = (dir: string): RunFiles => ({
  log: path.join(dir, "training_log.csv"),
  adapter: path.join(dir, "adapter", "adapter_model.safetensors"),
});

/** How run folder b's log and adapter differ from run folder a's. */
export const compareRuns = (a: string, b: string): Comparison => compareRunFiles(runFolder(a), runFolder(b));

/** How run b's log and adapter differ from run a's. */
export function compareRunFiles(a: RunFiles, b: RunFiles): Comparison {
  const [la, lb] = [lossColumns(a.log), lossColumns(b.log)];
  let lossRel = la.length === lb.length ? 0 : Number.POSITIVE_INFINITY;
  la.forEach((row, i) =>
    [1, 2].forEach((c) => {
      if (row[c] === "" && lb[i]?.[c] === "") return;
      const [x, y] = [Number(row[c]), Number(lb[i]?.[c])];
      lossRel = Math.max(lossRel, x === y ? 0 : Math.abs(x - y) / Math.abs(x));
    }),
  );
  const [wa, wb] = [loadSafetensors(a.adapter), loadSafetensors(b.adapter)];
  let adapterRel = wa.size === wb.size ? 0 : Number.POSITIVE_INFINITY;
  let adapterEqual = wa.size === wb.size;
  for (const [key, x] of wa) {
    const y = wb.get(key);
    if (!y || `${y.shape}` !== `${x.shape}`) {
      adapterRel = Number.POSITIVE_INFINITY;
      adapterEqual = false;
      continue;
    }
    torch.tidy(() => {
      adapterEqual &&= x.sub(y).abs().max().item() === 0;
      adapterRel = Math.max(adapterRel, x.sub(y).norm().item() / x.norm().item());
    });
  }
  torch.dispose([...wa.values(), ...wb.values()]);
  return {
    rows: [la.length, lb.length],
    lossesEqual: JSON.stringify(la) === JSON.stringify(lb),
    lossRel,
    adapterEqual,
    adapterRel,
  };
}
