// Deterministic, realistic-looking inputs for the chart tests (and the example renders).
import type { RunCurves } from "../../src/report/comparison-chart.js";
import type { LossRow } from "../../src/report/loss-curves-chart.js";
import type { SvdAnalysisModule } from "../../src/report/svd-analysis-chart.js";
import type { SynthesisModule } from "../../src/report/synthesis-chart.js";

/** A seeded uniform [0, 1) generator (Park–Miller), so every run draws the same charts. */
export function seededRandom(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 16807) % 2147483647) / 2147483647;
}

const PROJECTIONS = [
  "self_attn.q_proj",
  "self_attn.k_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "mlp.gate_proj",
  "mlp.up_proj",
  "mlp.down_proj",
];
const moduleName = (k: number) => `layers.${Math.floor(k / PROJECTIONS.length)}.${PROJECTIONS[k % PROJECTIONS.length]}`;

/** Rows as the trainer logs them: fractional epochs, an eval before training and after each epoch. */
export function sampleLossRows(epochs = 5, stepsPerEpoch = 21): LossRow[] {
  const rnd = seededRandom(1);
  const rows: LossRow[] = [{ step: 0, epoch: 0, loss: NaN, evalLoss: 2.9 }];
  for (let step = 1; step <= epochs * stepsPerEpoch; step++) {
    const epoch = step / stepsPerEpoch;
    rows.push({ step, epoch, loss: 0.6 + 2.2 * Math.exp(-step / 25) + (rnd() - 0.5) * 0.4 });
    if (step % stepsPerEpoch === 0) rows.push({ step, epoch, loss: NaN, evalLoss: 0.8 + 2 * Math.exp(-step / 30) });
  }
  return rows;
}

export function sampleSynthesisModules(count = 28, loraRank = 16, targetRank = 64): SynthesisModule[] {
  const rnd = seededRandom(3);
  return Array.from({ length: count }, (_, k) => {
    const top = 0.5 + rnd();
    const originalSpectrum = Array.from({ length: loraRank }, (_, i) => top * Math.exp(-i / 6));
    const tail = Array.from({ length: targetRank - loraRank }, (_, i) => originalSpectrum[loraRank - 1] * Math.exp(-(i + 1) / 10));
    const synthSpectrum = [...originalSpectrum.map((s) => s * (1 + 0.08 * (rnd() - 0.5))), ...tail];
    return { name: moduleName(k), originalSpectrum, synthSpectrum, achievedNoise: 0.1 * (1 + 0.02 * (rnd() - 0.5)) };
  });
}

/** Spectra with varied decay; error and energy computed from them as an exact SVD would. */
export function sampleSvdModules(count = 28, rank = 16, length = 64): SvdAnalysisModule[] {
  const rnd = seededRandom(5);
  return Array.from({ length: count }, (_, k) => {
    const decay = 4 + 10 * rnd();
    const spectrum = Array.from({ length }, (_, i) => (1 + rnd()) * Math.exp(-i / decay)).sort((a, b) => b - a);
    const total = spectrum.reduce((a, s) => a + s * s, 0);
    const head = spectrum.slice(0, rank).reduce((a, s) => a + s * s, 0);
    return { name: moduleName(k), relError: Math.sqrt(1 - head / total), energy: head / total, spectrum };
  });
}

/** Runs as the trainer logs them: a loss curve per step with single-batch spikes, held-out loss before training and after each epoch. */
export function sampleRuns(names = ["random", "svd"], seeds = 1, epochs = 5, stepsPerEpoch = 21): RunCurves[] {
  const rnd = seededRandom(7);
  return names.flatMap((arm, i) =>
    Array.from({ length: seeds }, (_, k) => {
      const start = 2.8 - 0.5 * i + 0.05 * k;
      const end = 0.62 - 0.03 * i;
      const tau = 25 - 5 * i;
      const train = Array.from({ length: epochs * stepsPerEpoch }, (_, s) => ({
        step: s + 1,
        loss: end + (start - end) * Math.exp(-s / tau) + (rnd() - 0.5) * 0.3 + (s % 37 === 5 ? 1.5 : 0), // a few one-batch spikes
      }));
      const heldOut = Array.from({ length: epochs + 1 }, (_, e) => ({
        step: e * stepsPerEpoch,
        loss: end + 0.15 + (start - end) * Math.exp((-e * stepsPerEpoch) / (tau + 5)),
      }));
      return { run: seeds > 1 ? `${arm}-s${k}` : arm, arm, train, heldOut };
    }),
  );
}
