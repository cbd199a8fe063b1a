// Exact-answer accuracy of trained adapters, measured after training on the same questions for
// every run: the base model is loaded once and each run's saved adapter (a plain LoRA on the
// original base, whatever its init) is put on it in turn. The experiment measures the runs the
// comparison uses — each arm's runs at its tuned learning rate — so a learning-rate grid does not
// multiply the cost of answering 1,000 questions. Each run's outcome goes to accuracy_<run>.json
// beside its summary (per question, so arms can be compared on the same questions), with the
// digest of the adapter it was measured with: a run trained again is measured again.
import fs from "node:fs";
import path from "node:path";
import { loadDataset } from "../data/dataset.js";
import { loadAdapter } from "../hf/peft.js";
import { loadTokenizer } from "../hf/tokenizer.js";
import { loadCausalLM } from "../model/loader.js";
import { detachLora, loadLora } from "../model/lora.js";
import * as torch from "../torch/index.js";
import { evaluateAccuracy } from "../train/evaluate.js";
import type { TrainingEvents } from "../train/events.js";
import { defaultDtype, generationBatch } from "../train/trainer.js";
import { writeFileAtomic } from "../util/atomic.js";
import { fileDigest } from "../util/digest.js";
import { writeOutputs } from "../util/outputs.js";

export interface AccuracyRecord {
  made_by: "svdlora";
  run: string;
  questions: string;
  /** sha256 of the adapter's weights file when it was measured. */
  adapter: string;
  correct: number;
  total: number;
  /** Questions left out: no checkable answer, or a prompt longer than maxLength could hold. */
  leftOut: number;
  seconds: number;
  /** Each question's outcome, in the questions' order. */
  items: boolean[];
}

export const accuracyFile = (trainingDir: string, run: string) => path.join(trainingDir, `accuracy_${run}.json`);

export interface AccuracyPass {
  baseModel: string;
  questions: string;
  samples: number;
  systemPrompt: string | null;
  /** Prompts longer than this many tokens could hold are left out (not rendered). */
  maxLength: number;
  maxNewTokens: number;
  device: string;
  generationBatchSize?: number;
}

/** Answers the questions with each run's adapter (runs that already have this accuracy are skipped); returns the records. */
export async function measureAccuracy(
  trainingDir: string,
  runs: { name: string; adapterDir: string }[],
  o: AccuracyPass,
  events?: TrainingEvents,
): Promise<AccuracyRecord[]> {
  const questions = loadDataset(o.questions).slice(0, o.samples);
  const adapterDigest = (run: { adapterDir: string }) => fileDigest(path.join(run.adapterDir, "adapter_model.safetensors"));
  const done = (run: { name: string; adapterDir: string }) => {
    try {
      const r = JSON.parse(fs.readFileSync(accuracyFile(trainingDir, run.name), "utf8")) as AccuracyRecord;
      const same = r.made_by === "svdlora" && r.questions === path.resolve(o.questions) && r.total + (r.leftOut ?? 0) === questions.length;
      return same && r.adapter === adapterDigest(run) ? r : null;
    } catch {
      return null;
    }
  };
  const todo = runs.filter((r) => !done(r));
  if (todo.length > 0) {
    events?.phase?.("loading", o.baseModel);
    const tokenizer = await loadTokenizer(o.baseModel);
    const model = loadCausalLM(o.baseModel, { dtype: defaultDtype(o.device), device: o.device });
    try {
      for (const run of todo) {
        events?.phase?.("generating", `${questions.length} answers with ${run.name}`);
        const { config, weights } = loadAdapter(run.adapterDir);
        loadLora(model, config, weights, false);
        torch.dispose([...weights.values()]);
        const t0 = performance.now();
        const a = evaluateAccuracy(model, tokenizer, questions, {
          systemPrompt: o.systemPrompt ?? undefined,
          maxLength: o.maxLength,
          maxNewTokens: o.maxNewTokens,
          batchSize: o.generationBatchSize ?? generationBatch(o.device),
        });
        detachLora(model);
        const record: AccuracyRecord = {
          made_by: "svdlora",
          run: run.name,
          questions: path.resolve(o.questions),
          adapter: adapterDigest(run),
          correct: a.correct,
          total: a.total,
          leftOut: a.skipped + a.tooLong,
          seconds: (performance.now() - t0) / 1000,
          items: a.outputs.map((x) => x.correct),
        };
        const name = path.basename(accuracyFile(trainingDir, run.name));
        await writeOutputs({ root: trainingDir, name: `accuracy-${run.name}`, by: `accuracy of ${run.name}`, outputs: [name] }, (staged) =>
          writeFileAtomic(staged(name), `${JSON.stringify(record)}\n`),
        );
      }
    } finally {
      detachLora(model); // a run's adapter, when its measurement failed
      torch.dispose([...model.namedWeights().values()]);
    }
  }
  return runs.map((r) => done(r)!);
}
