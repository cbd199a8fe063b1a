// Concurrent arms: several LoRA runs over one frozen base model, their micro-batches in one batch
// (docs/concurrent.md). Each projection carries one adapter per arm (or none for an arm that does
// not target it), and every forward says which rows of the batch, flattened to [tokens, hidden],
// belong to which arm: the base weight multiplies all rows in one GEMM, each arm's factors only
// its own. Arms whose init rewrites W (PiSSA: W − s·B₀A₀) share the untouched W and carry the
// difference as a frozen low-rank correction on their rows. Each arm draws its random numbers
// (init, LoRA dropout) from its own generator, swapped into libtorch's global one for the draw.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { LoRA } from "./lora.js";

/** One arm's adapter on one projection: its LoRA and, where its init moved part of W into the LoRA, the frozen correction −s·B₀A₀. */
export interface ArmAdapter {
  lora: LoRA;
  correction: LoRA | null;
}

/**
 * One arm's share of a concurrent batch: rows [start, start + rows) of the batch's tokens, which
 * are `batch` samples of rows / batch tokens each (padded), or one row of packed samples that
 * attend only inside `mask` ([1, 1, t, t]). Unless the whole batch attends as one packed call
 * (ForwardOptions.packed), each arm's attention runs in this layout of its own.
 */
export interface ArmSegment {
  arm: number;
  start: number;
  rows: number;
  batch: number;
  mask?: Tensor;
}

/** What a projection needs to apply each arm's adapter to its rows. */
export interface ArmRoute {
  segments: readonly ArmSegment[];
  generators: ArmGenerators | null;
}

/** The segment list of a batch that belongs to one arm: every row of ids [B, T]. */
export const wholeBatch = (arm: number, ids: Tensor): ArmSegment[] => [{ arm, start: 0, rows: ids.numel(), batch: ids.size(0) }];

interface GeneratorState {
  cpu: Tensor;
  /** The CUDA generator's, on a CUDA model (dropout draws there); the CPU one is what checkpoints keep, as for a run alone. */
  cuda: Tensor | null;
}

/**
 * Each arm's random generators. A run alone draws from libtorch's global generators; an arm has
 * its own state, swapped in for its draws, so it draws the same numbers as it would alone.
 */
export class ArmGenerators {
  private states: GeneratorState[] = [];
  private readonly cudaIndex: number | undefined;

  constructor(device: string) {
    this.cudaIndex = device.startsWith("cuda") ? torch.cuda.index(device) : undefined;
  }

  get count(): number {
    return this.states.length;
  }

  /** A new arm whose generators start where the global ones are now; returns its index. */
  add(): number {
    this.states.push(this.capture());
    return this.states.length - 1;
  }

  /** Runs fn with the arm's generators as the global ones, keeps where they end, and puts the global ones back. */
  use<R>(arm: number, fn: () => R): R {
    const own = this.states[arm];
    if (!own) throw new Error(`no arm ${arm} (${this.states.length} arms)`);
    const global = this.capture();
    this.apply(own);
    try {
      return fn();
    } finally {
      this.states[arm] = this.capture();
      disposeState(own);
      this.apply(global);
      disposeState(global);
    }
  }

  /** Copies of every arm's state, one tensor per generator (the caller disposes them). */
  snapshot(): Tensor[] {
    return this.states.flatMap((s) => [s.cpu, ...(s.cuda ? [s.cuda] : [])]).map((t) => torch.keep(t.clone()));
  }

  /** Puts every arm back where a snapshot was taken (the snapshot stays the caller's). */
  restore(snapshot: readonly Tensor[]): void {
    const per = this.cudaIndex === undefined ? 1 : 2;
    if (snapshot.length !== per * this.states.length) throw new Error("ArmGenerators.restore: not a snapshot of these arms");
    const old = this.states;
    this.states = old.map((_, k) => ({
      cpu: torch.keep(snapshot[per * k].clone()),
      cuda: per === 2 ? torch.keep(snapshot[per * k + 1].clone()) : null,
    }));
    old.forEach(disposeState);
  }

  dispose(): void {
    this.states.forEach(disposeState);
    this.states = [];
  }

  private capture(): GeneratorState {
    return {
      cpu: torch.keep(torch.getRngState()),
      cuda: this.cudaIndex === undefined ? null : torch.keep(torch.getRngState(this.cudaIndex)),
    };
  }

  private apply(s: GeneratorState): void {
    torch.setRngState(s.cpu);
    if (s.cuda && this.cudaIndex !== undefined) torch.setRngState(s.cuda, this.cudaIndex);
  }
}

const disposeState = (s: GeneratorState) => torch.dispose([s.cpu, s.cuda]);
