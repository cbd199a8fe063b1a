// Checkpoints for an exact resume: the trained tensors (by name), AdamW's moments and step
// counts, the CPU generator, and where the run stands (step, tokens, the history so far).
// Written into a fresh folder that replaces the old one (util/atomic.ts), so a kill leaves the
// previous checkpoint, or the new one once the interrupted swap is finished (hasCheckpoint does).
// "Checkpoint" means this resume state only; layers recomputed in backward are "recomputed".
import fs from "node:fs";
import path from "node:path";
import { SafetensorsFile, saveSafetensors } from "../hf/safetensors.js";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { recoverDirectory, replaceDirectoryAtomic, writeFileAtomic } from "../util/atomic.js";
import type { AdamW, AdamWHyper } from "./optim.js";

/** One optimizer step as the run saw it: its mean loss, what it trained on, its learning rate and gradient norm. */
export interface StepRecord {
  loss: number;
  lr: number;
  gradNorm: number;
  /** Tokens in the step's batches (padding excluded). */
  tokens: number;
  /** Predicted tokens the loss is the mean over. */
  targets: number;
  /** Seconds since the run started, when the step ended. */
  elapsedS: number;
}

export interface EvalRecord {
  step: number;
  epoch: number;
  loss: number;
  /** Training tokens processed before it (cumulative). */
  tokens: number;
  elapsedS: number;
}

export interface RunPosition {
  /** Optimizer steps done (checkpoints are taken between steps). */
  step: number;
  tokens: number;
  elapsedS: number;
  history: StepRecord[];
  evals: EvalRecord[];
  skipped: number;
  /** The settings that decide the run's numbers; a resume must use the same. */
  fingerprint: Record<string, unknown>;
}

interface StateFile extends RunPosition {
  adamw: { hyper: AdamWHyper; steps: (number | null)[] };
  /** As Hugging Face's Trainer writes trainer_state.json, so its tooling reads the history. */
  global_step: number;
  log_history: Record<string, number>[];
}

/** Hugging Face Trainer's log_history: a row per step (loss, learning_rate, grad_norm) and per evaluation (eval_loss). */
export function logHistory(position: Pick<RunPosition, "history" | "evals">, stepsPerEpoch: number): Record<string, number>[] {
  const rows = position.history.map((h, i) => ({
    step: i + 1,
    epoch: (i + 1) / stepsPerEpoch,
    loss: h.loss,
    learning_rate: h.lr,
    grad_norm: h.gradNorm,
  }));
  const evals = position.evals.map((e) => ({ step: e.step, epoch: e.epoch, eval_loss: e.loss }));
  return [...rows, ...evals].sort((a, b) => a.step - b.step || ("eval_loss" in a ? 1 : -1));
}

const STATE = "trainer_state.json";
const RNG = "rng.cpu";
const TENSORS = "state.safetensors";

/** Whether dir holds a checkpoint (after finishing a swap that a kill interrupted). */
export function hasCheckpoint(dir: string): boolean {
  recoverDirectory(dir);
  return fs.existsSync(path.join(dir, STATE));
}

export function saveCheckpoint(
  dir: string,
  params: Map<string, Tensor>,
  optimizer: AdamW,
  position: RunPosition,
  stepsPerEpoch: number,
): void {
  const sd = optimizer.stateDict();
  const rng = torch.getRngState();
  try {
    const tensors = new Map<string, Tensor>([[RNG, rng]]);
    for (const [name, t] of params) tensors.set(`param.${name}`, t);
    sd.state.forEach((s, i) => {
      if (!s) return;
      tensors.set(`adamw.${i}.exp_avg`, s.expAvg);
      tensors.set(`adamw.${i}.exp_avg_sq`, s.expAvgSq);
    });
    const state: StateFile = {
      ...position,
      adamw: { hyper: sd.hyper, steps: sd.state.map((s) => s?.step ?? null) },
      global_step: position.step,
      log_history: logHistory(position, stepsPerEpoch),
    };
    replaceDirectoryAtomic(
      dir,
      (tmp) => {
        saveSafetensors(path.join(tmp, TENSORS), tensors, { format: "pt" });
        writeFileAtomic(path.join(tmp, STATE), `${JSON.stringify(state)}\n`);
      },
      "training checkpoint",
    );
  } finally {
    torch.dispose([rng, ...sd.state.flatMap((s) => (s ? [s.expAvg, s.expAvgSq] : []))]);
  }
}

/** The checkpoint's tensors: trained weights and AdamW moments as weights (floating point, finite), the generator's state as bytes. */
function readCheckpointTensors(file: string): Map<string, Tensor> {
  const st = SafetensorsFile.open(file);
  const out = new Map<string, Tensor>();
  try {
    for (const key of st.keys()) out.set(key, key === RNG ? st.read(key) : st.readWeight(key));
    return out;
  } catch (error) {
    torch.dispose([...out.values()]);
    throw error;
  } finally {
    st.close();
  }
}

/** Puts a checkpoint's tensors, optimizer and generator state back; returns where the run stood. */
export function loadCheckpoint(
  dir: string,
  params: Map<string, Tensor>,
  optimizer: AdamW,
  fingerprint: Record<string, unknown>,
): RunPosition {
  let state: StateFile;
  try {
    state = JSON.parse(fs.readFileSync(path.join(dir, STATE), "utf8")) as StateFile;
  } catch (e) {
    throw new Error(`checkpoint ${dir} is unreadable (${(e as Error).message.split("\n")[0]}): delete it to start afresh`);
  }
  const changed = Object.keys({ ...fingerprint, ...state.fingerprint }).filter(
    (k) => JSON.stringify(fingerprint[k]) !== JSON.stringify(state.fingerprint?.[k]),
  );
  if (changed.length)
    throw new Error(
      `checkpoint ${dir} was made with other settings (${changed.map((k) => `${k}: ${JSON.stringify(state.fingerprint?.[k])} then, ${JSON.stringify(fingerprint[k])} now`).join("; ")}): resume with the same settings, or start afresh without \`resume\``,
    );
  if (!Array.isArray(state.history)) throw new Error(`checkpoint ${dir} was written by an older svdlora: delete it to start afresh`);
  const tensors = readCheckpointTensors(path.join(dir, TENSORS));
  try {
    const get = (key: string) => {
      const t = tensors.get(key);
      if (!t) throw new Error(`checkpoint ${dir} has no tensor ${key}: delete it to start afresh`);
      return t;
    };
    torch.noGrad(() => {
      for (const [name, t] of params) t.copy_(get(`param.${name}`));
    });
    optimizer.loadStateDict({
      hyper: state.adamw.hyper,
      state: state.adamw.steps.map((step, i) =>
        step === null ? null : { step, expAvg: get(`adamw.${i}.exp_avg`), expAvgSq: get(`adamw.${i}.exp_avg_sq`) },
      ),
    });
    torch.setRngState(get(RNG));
  } finally {
    torch.dispose(tensors);
  }
  const { adamw: _a, global_step: _g, log_history: _l, ...position } = state;
  return position;
}
