// Held-out evaluation: token-weighted loss, and exact-answer accuracy from greedy generation.
import { checkAnswer } from "../data/answer.js";
import { cannotFit, encodePrompt, promptOf } from "../data/format.js";
import type { Encoded, Sample } from "../data/types.js";
import type { HfTokenizer } from "../hf/tokenizer.js";
import type { CausalLM } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import { evaluationLoss } from "./backprop.js";
import { armsBatch, makeBatch, targetCount } from "./batches.js";

/**
 * Token-weighted mean loss over a data set, without gradients (LoRA dropout off). Batched as
 * training is (packed on CUDA), with the loss over the vocabulary a chunk of rows at a time.
 */
export function evaluateLoss(
  model: CausalLM,
  samples: Encoded[],
  o: { batchSize: number; padId: number; device: string; packing?: boolean },
): number {
  model.setTraining(false);
  let sum = 0,
    count = 0;
  try {
    torch.noGrad(() => {
      for (let i = 0; i < samples.length; i += o.batchSize) {
        torch.tidy(() => {
          const b = makeBatch(samples.slice(i, i + o.batchSize), { ...o, packing: o.packing ?? false, dtype: model.dtype });
          if (b.targets === 0) return;
          sum += evaluationLoss(model, b).item() * b.targets;
          count += b.targets;
        });
      }
    });
  } finally {
    model.setTraining(true);
  }
  return sum / count;
}

/**
 * evaluateLoss for several concurrent arms of a model carrying arms, their held-out batches
 * through the model together: batch i holds every arm's i-th batch of its own batchSize. Each
 * arm's loss is summed as evaluateLoss sums it alone.
 */
export function evaluateArmLosses(
  model: CausalLM,
  arms: { arm: number; samples: Encoded[]; batchSize: number }[],
  o: { padId: number; device: string; packing?: boolean },
): number[] {
  const sums = arms.map(() => ({ sum: 0, count: 0 }));
  const batches = Math.max(...arms.map((a) => Math.ceil(a.samples.length / a.batchSize)));
  model.setTraining(false);
  try {
    torch.noGrad(() => {
      for (let i = 0; i < batches; i++)
        torch.tidy(() => {
          // An arm whose batch predicts nothing counts for nothing, as evaluateLoss skips such a batch.
          const parts = arms
            .map((a, k) => ({ k, arm: a.arm, samples: a.samples.slice(i * a.batchSize, (i + 1) * a.batchSize) }))
            .filter((p) => targetCount(p.samples) > 0);
          if (parts.length === 0) return;
          const b = armsBatch(parts, { ...o, packing: o.packing ?? false, dtype: model.dtype });
          const losses = evaluationLoss(model, b).toArray() as number[];
          b.arms!.forEach((share, j) => {
            sums[parts[j].k].sum += losses[j] * share.targets;
            sums[parts[j].k].count += share.targets;
          });
        });
    });
  } finally {
    model.setTraining(true);
  }
  return sums.map((s) => s.sum / s.count);
}

export interface AccuracyResult {
  correct: number;
  total: number;
  /** Samples without a checkable answer (no \boxed{} in the reference). */
  skipped: number;
  /** Samples whose prompt is longer than maxLength tokens could hold (cannotFit): left out, not rendered. */
  tooLong: number;
  outputs: { question: string; expected: string; output: string; correct: boolean }[];
}

/**
 * Greedy answers to each sample's prompt, checked as exact rationals against its boxed answer.
 * Prompts are decoded batchSize at a time, grouped by length so little padding is decoded; the
 * outputs keep the samples' order.
 */
export function evaluateAccuracy(
  model: CausalLM,
  tokenizer: HfTokenizer,
  samples: Sample[],
  o: {
    systemPrompt?: string;
    maxLength?: number;
    maxNewTokens: number;
    batchSize?: number;
    onProgress?: (done: number, total: number) => void;
    /** On a model carrying concurrent arms: whose adapter answers. */
    arm?: number;
  },
): AccuracyResult {
  const answered = samples.filter((sample) => sample.answer !== undefined);
  // A prompt too long to fit is not rendered: a huge one would stop here with the template's size limit.
  const fits = answered.filter(
    (sample) => !cannotFit(promptOf(sample), tokenizer, { maxLength: o.maxLength, systemPrompt: o.systemPrompt }),
  );
  const checkable = fits.map((sample) => ({ sample, prompt: encodePrompt(sample, tokenizer, { systemPrompt: o.systemPrompt }) }));
  const byLength = checkable.map((_, i) => i).sort((a, b) => checkable[a].prompt.length - checkable[b].prompt.length);
  const answers = new Array<number[]>(checkable.length);
  const batchSize = o.batchSize ?? 32;
  const padId = tokenizer.pad?.id ?? tokenizer.eos?.id ?? 0;
  model.setTraining(false);
  try {
    for (let start = 0; start < byLength.length; start += batchSize) {
      const rows = byLength.slice(start, start + batchSize);
      const outs = model.generateBatch(
        rows.map((i) => checkable[i].prompt),
        { maxNewTokens: o.maxNewTokens, stopTokenIds: tokenizer.stopTokenIds, padId, arm: o.arm },
      );
      rows.forEach((i, j) => {
        answers[i] = outs[j];
      });
      o.onProgress?.(Math.min(start + batchSize, byLength.length), byLength.length);
    }
  } finally {
    model.setTraining(true);
  }
  const result: AccuracyResult = {
    correct: 0,
    total: checkable.length,
    skipped: samples.length - answered.length,
    tooLong: answered.length - fits.length,
    outputs: [],
  };
  checkable.forEach(({ sample }, i) => {
    const output = tokenizer.decode(answers[i], { skipSpecialTokens: true });
    const correct = checkAnswer(output, sample.answer!);
    if (correct) result.correct++;
    const question = sample.messages.find((m) => m.role === "user")?.content ?? "";
    result.outputs.push({ question, expected: sample.answer!, output, correct });
  });
  return result;
}
