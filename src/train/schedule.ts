// Learning-rate schedules as pure functions of the step, matching Hugging Face transformers'
// get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup (num_cycles = 0.5) and
// get_constant_schedule_with_warmup. `step` counts optimizer updates already taken, as LambdaLR
// does: update number k (0-based) uses lrAt(k). So with warmup the very first update has lr 0,
// exactly as in transformers.

export type ScheduleKind = "linear" | "cosine" | "constant";
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ["linear", "cosine", "constant"];

export interface Schedule {
  /** The peak learning rate. */
  base: number;
  warmupSteps: number;
  /** Total optimizer updates of the run (ignored by "constant"). */
  totalSteps: number;
  kind: ScheduleKind;
}

/** The multiplier of the base rate at a step (transformers' lr_lambda). */
export function lrFactor(step: number, s: Omit<Schedule, "base">): number {
  if (!Number.isInteger(step) || step < 0) throw new Error(`lrAt: step must be a whole number >= 0, got ${step}`);
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0)
    throw new Error(`lrAt: warmupSteps must be a whole number >= 0, got ${s.warmupSteps}`);
  if (!Number.isInteger(s.totalSteps) || s.totalSteps < 0)
    throw new Error(`lrAt: totalSteps must be a whole number >= 0, got ${s.totalSteps}`);
  if (step < s.warmupSteps) return step / Math.max(1, s.warmupSteps);
  const decaySteps = Math.max(1, s.totalSteps - s.warmupSteps);
  switch (s.kind) {
    case "constant":
      return 1;
    case "linear":
      return Math.max(0, (s.totalSteps - step) / decaySteps);
    case "cosine": {
      const numCycles = 0.5;
      const progress = (step - s.warmupSteps) / decaySteps;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
    }
    default:
      throw new Error(`lrAt: unknown schedule '${String(s.kind)}' (use ${SCHEDULE_KINDS.join(", ")})`);
  }
}

/** The learning rate for optimizer update number `step` (0-based). */
export function lrAt(step: number, s: Schedule): number {
  return s.base * lrFactor(step, s);
}
