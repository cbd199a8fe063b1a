// Training checkpoints for exact resume: the LoRA factors, AdamW's moments and step counts, the
// CPU generator, and where the run stands (step, tokens, losses so far). Written into a fresh
// directory that replaces the old one in one rename, so a crash leaves the previous checkpoint.
import fs from "node:fs";
import path from "node:path";
import { loadSafetensors, saveSafetensors } from "../hf/safetensors.js";
import type { LoRA } from "../model/lora.js";
import * as torch from "../torch/index.js";
import { replaceDirectoryAtomic, writeFileAtomic } from "../util/atomic.js";
import type { AdamW, AdamWHyper } from "./optim.js";

export interface RunPosition {
  /** Optimizer steps done (checkpoints are taken between steps). */
  step: number;
  tokens: number;
  elapsedS: number;
  losses: number[];
  evalLosses: { step: number; epoch: number; loss: number }[];
  skipped: number;
  /** The settings that decide the run's numbers; a resume must use the same. */
  fingerprint: Record<string, unknown>;
}

interface StateFile extends RunPosition {
  adamw: { hyper: AdamWHyper; steps: (number | null)[] };
}

const STATE = "trainer_state.json";
const TENSORS = "state.safetensors";

export const checkpointDir = (outputDir: string, runName: string) => path.join(outputDir, "checkpoints", runName);
export const hasCheckpoint = (dir: string) => fs.existsSync(path.join(dir, STATE));

export function saveCheckpoint(dir: string, loras: Map<string, LoRA>, optimizer: AdamW, position: RunPosition): void {
  const sd = optimizer.stateDict();
  const rng = torch.getRngState();
  try {
    const tensors = new Map<string, torch.Tensor>([["rng.cpu", rng]]);
    for (const [module, l] of loras) {
      tensors.set(`lora.${module}.A`, l.A);
      tensors.set(`lora.${module}.B`, l.B);
    }
    sd.state.forEach((s, i) => {
      if (!s) return;
      tensors.set(`adamw.${i}.exp_avg`, s.expAvg);
      tensors.set(`adamw.${i}.exp_avg_sq`, s.expAvgSq);
    });
    const state: StateFile = { ...position, adamw: { hyper: sd.hyper, steps: sd.state.map((s) => s?.step ?? null) } };
    replaceDirectoryAtomic(dir, (tmp) => {
      saveSafetensors(path.join(tmp, TENSORS), tensors, { format: "pt" });
      writeFileAtomic(path.join(tmp, STATE), `${JSON.stringify(state)}\n`);
    });
  } finally {
    torch.dispose([rng, ...sd.state.flatMap((s) => (s ? [s.expAvg, s.expAvgSq] : []))]);
  }
}

/** Puts a checkpoint's factors, optimizer and generator state back; returns where the run stood. */
export function loadCheckpoint(dir: string, loras: Map<string, LoRA>, optimizer: AdamW, fingerprint: Record<string, unknown>): RunPosition {
  let state: StateFile;
  try {
    state = JSON.parse(fs.readFileSync(path.join(dir, STATE), "utf8")) as StateFile;
  } catch (e) {
    throw new Error(`checkpoint ${dir} is unreadable (${(e as Error).message.split("\n")[0]}): delete it to start afresh`);
  }
  const changed = Object.keys(fingerprint).filter((k) => JSON.stringify(fingerprint[k]) !== JSON.stringify(state.fingerprint?.[k]));
  if (changed.length)
    throw new Error(
      `checkpoint ${dir} was made with other settings (${changed.map((k) => `${k}: ${JSON.stringify(state.fingerprint?.[k])} then, ${JSON.stringify(fingerprint[k])} now`).join("; ")}): resume with the same flags, or start afresh without --resume`,
    );
  const tensors = loadSafetensors(path.join(dir, TENSORS));
  try {
    const get = (key: string) => {
      const t = tensors.get(key);
      if (!t) throw new Error(`checkpoint ${dir} has no tensor ${key}: delete it to start afresh`);
      return t;
    };
    torch.noGrad(() => {
      for (const [module, l] of loras) {
        l.A.copy_(get(`lora.${module}.A`));
        l.B.copy_(get(`lora.${module}.B`));
      }
    });
    optimizer.loadStateDict({
      hyper: state.adamw.hyper,
      state: state.adamw.steps.map((step, i) =>
        step === null ? null : { step, expAvg: get(`adamw.${i}.exp_avg`), expAvgSq: get(`adamw.${i}.exp_avg_sq`) },
      ),
    });
    torch.setRngState(get("rng.cpu"));
  } finally {
    torch.dispose(tensors);
  }
  const { adamw: _, ...position } = state;
  return position;
}
