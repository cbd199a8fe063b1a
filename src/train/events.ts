// What a training run tells the outside while it works: its phase, each step, each held-out
// evaluation. The library calls these; the command line turns them into a progress bar and
// lines on the terminal (cli/progress.ts); library users pass their own or none.

/** preparing: the init reads calibration batches and computes the adapter's factors. */
export type Phase = "loading" | "preparing" | "evaluating" | "training" | "generating" | "saving";

export interface StepEvent {
  /** Optimizer steps done so far. */
  step: number;
  /** Fractional epochs done so far. */
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Training tokens processed so far (cumulative). */
  tokens: number;
}

export interface TrainingEvents {
  /** What the run is doing now; detail says more ("held-out loss, 240 samples"). */
  phase?(phase: Phase, detail?: string): void;
  /** The step loop starts (or resumes at startStep). */
  start?(o: { label: string; totalSteps: number; totalEpochs: number; startStep: number; startTokens: number }): void;
  step?(s: StepEvent): void;
  evaluated?(e: { step: number; epoch: number; loss: number }): void;
  /** The step loop ended, done or stopped. */
  end?(): void;
  /** Something the user should know ("no checkpoint in …, starting from step 0"). */
  note?(line: string): void;
}

/** Raised when a run was asked to stop (its AbortSignal) and stopped at a step boundary after saving a checkpoint. */
export class InterruptedError extends Error {
  override name = "InterruptedError";
}
