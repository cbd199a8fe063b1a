// Held-out evaluation: token-weighted loss, and exact-answer accuracy from greedy generation.
import { checkAnswer } from "../data/answer.js";
import { cannotFit, encodePrompt, promptOf } from "../data/format.js";
import type { Encoded, Sample } from "../data/types.js";
import type { HfTokenizer } from "../hf/tokenizer.js";
import type { CausalLM } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import { evaluationLoss } from "./backprop.js";
import { makeBatch } from "./batches.js";

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
          const b = makeBatch(samples.slice(i, i + o.batchSize), { ...o, packing: o.packing ?? false });
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

export interface AccuracyResult {
  correct: number;
  total: number;
  /** Samples without a checkable answer (no \boxed{} in the reference). */
  skipped: number;
  /** Samples whose prompt is longer than maxLength tokens could hold (cannotFit): left out, not rendered. */
  tooLong: number;
  outputs: { question: string; expected: string; output: string; correct: boolean }[];
}

/** Greedy answers to each sample's prompt, checked as exact rationals against its boxed answer. */
export function evaluateAccuracy(
  model: CausalLM,
  tokenizer: HfTokenizer,
  samples: Sample[],
  o: { systemPrompt?: string; maxLength?: number; maxNewTokens: number; onProgress?: (done: number, total: number) => void },
): AccuracyResult {
  const result: AccuracyResult = { correct: 0, total: 0, skipped: 0, tooLong: 0, outputs: [] };
  samples.forEach((sample, i) => {
    if (sample.answer === undefined) {
      result.skipped++;
      return;
    }
    // A prompt too long to fit is not rendered: a huge one would stop here with the template's size limit.
    if (cannotFit(promptOf(sample), tokenizer, { maxLength: o.maxLength, systemPrompt: o.systemPrompt })) {
      result.tooLong++;
      return;
    }
    const prompt = encodePrompt(sample, tokenizer, { systemPrompt: o.systemPrompt });
    const ids = model.generate(prompt, { maxNewTokens: o.maxNewTokens, stopTokenIds: tokenizer.stopTokenIds });
    const output = tokenizer.decode(ids, { skipSpecialTokens: true });
    const correct = checkAnswer(output, sample.answer);
    result.total++;
    if (correct) result.correct++;
    const question = sample.messages.find((m) => m.role === "user")?.content ?? "";
    result.outputs.push({ question, expected: sample.answer, output, correct });
    o.onProgress?.(i + 1, samples.length);
  });
  return result;
}
