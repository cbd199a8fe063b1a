// Checkpoints for an exact resume: the trained tensors (by name), AdamW's moments and step
// counts, the CPU generator, and where the run stands (step, tokens, the history so far).
// Written into a fresh folder that replaces the old one (util/atomic.ts), so a kill leaves the
// previous checkpoint, or the new one once the interrupted swap is finished (hasCheckpoint does).
// "Checkpoint" means this resume state only; layers recomputed in backward are "recomputed".
// Files: state.safetensors (the tensors), svdlora_state.json (the rest), and trainer_state.json
// as Hugging Face's Trainer writes it (global_step, log_history…) for HF tooling; resume reads
// only the first two.
import fs from "node:fs";
import path from "node:path";
import { SafetensorsFile, saveSafetensors } from "../hf/safetensors.js";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { recoverDirectory, replaceDirectoryAtomic, writeFileAtomic } from "../util/atomic.js";
import type { AdamW, AdamWHyper } from "./optim.js";
import { type EvalRecord, type StepRecord, runRows } from "./run-log.js";

export type { EvalRecord, StepRecord };

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

/** svdlora's own state: where the run stands and AdamW's step counts (its moments are tensors). */
interface StateFile extends RunPosition {
  adamw: { hyper: AdamWHyper; steps: (number | null)[] };
}

/**
 * Hugging Face Trainer's trainer_state.json, with only the fields its TrainerState has (its
 * load_from_json takes no others), so that HF tooling reads the run's history.
 */
interface HfTrainerState {
  epoch: number;
  global_step: number;
  max_steps: number;
  num_train_epochs: number;
  log_history: Record<string, number>[];
}

/** Hugging Face Trainer's log_history: a row per step (loss, learning_rate, grad_norm) and per evaluation (eval_loss). */
export function logHistory(position: Pick<RunPosition, "history" | "evals">, stepsPerEpoch: number): Record<string, number>[] {
  return runRows(position.history, position.evals, stepsPerEpoch).map(
    (r): Record<string, number> =>
      r.kind === "eval"
        ? { step: r.step, epoch: r.epoch, eval_loss: r.evalLoss }
        : { step: r.step, epoch: r.epoch, loss: r.loss, learning_rate: r.lr, grad_norm: r.gradNorm ?? Number.NaN },
  );
}

const STATE = "svdlora_state.json";
const HF_STATE = "trainer_state.json";
const RNG = "rng.cpu";
const TENSORS = "state.safetensors";

/** Whether dir holds a checkpoint (after finishing a swap that a kill interrupted). */
export function hasCheckpoint(dir: string): boolean {
  recoverDirectory(dir);
  return fs.existsSync(path.join(dir, STATE)) || fs.existsSync(path.join(dir, HF_STATE));
}

export function saveCheckpoint(
  dir: string,
  params: Map<string, Tensor>,
  optimizer: AdamW,
  position: RunPosition,
  { stepsPerEpoch, totalSteps }: { stepsPerEpoch: number; totalSteps: number },
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
    const state: StateFile = { ...position, adamw: { hyper: sd.hyper, steps: sd.state.map((s) => s?.step ?? null) } };
    const hf: HfTrainerState = {
      epoch: position.step / stepsPerEpoch,
      global_step: position.step,
      max_steps: totalSteps,
      num_train_epochs: Math.ceil(totalSteps / stepsPerEpoch),
      log_history: logHistory(position, stepsPerEpoch),
    };
    replaceDirectoryAtomic(
      dir,
      (tmp) => {
        saveSafetensors(path.join(tmp, TENSORS), tensors, { format: "pt" });
        writeFileAtomic(path.join(tmp, STATE), `${JSON.stringify(state)}\n`);
        writeFileAtomic(path.join(tmp, HF_STATE), `${JSON.stringify(hf, null, 2)}\n`);
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
  if (!fs.existsSync(path.join(dir, STATE)))
    throw new Error(`checkpoint ${dir} was written by an older svdlora: delete it to start afresh`);
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
  if (!Array.isArray(state.history) || state.history.some((h) => typeof h.time !== "number" || typeof h.seconds !== "number"))
    throw new Error(`checkpoint ${dir} was written by an older svdlora: delete it to start afresh`);
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
  const { adamw: _, ...position } = state;
  return position;
}
