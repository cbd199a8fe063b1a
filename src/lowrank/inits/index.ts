// Every LoRA initialization svdlora can start from beyond random and gaussian (model/lora.ts) and
// the teacher SVD (lowrank/factors.ts): parse a method name, learn which calibration statistic it
// needs, and turn it into a ModuleInit for addLora.
import { loraScale } from "../../util/lora-scale.js";
import type { ModuleInit } from "../../model/lora.js";
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import { deriveSeed } from "../random.js";
import { seededRandom } from "./common.js";
import { corda } from "./corda.js";
import type { EvaLayer } from "./eva.js";
import { loraGa, loraOne } from "./gradient.js";
import { loftq } from "./loftq.js";
import { mica, milora, olora, orthogonal, pissa, pissaNiter } from "./weight.js";

export * from "./calibration.js";
export * from "./common.js";
export * from "./corda.js";
export * from "./eva.js";
export * from "./gradient.js";
export * from "./loftq.js";
export * from "./lowrank.js";
export * from "./weight.js";

/** What a method is computed from, beyond the base weight. */
export type InitStatistic = "weight" | "inputs" | "covariance" | "gradient";

/** The methods by --init name: their statistic and their reference. */
export const INIT_METHODS = {
  pissa: { statistic: "weight", reference: 'PEFT 0.21 init_lora_weights="pissa"' },
  "pissa-niter-N": { statistic: "weight", reference: 'PEFT 0.21 "pissa_niter_N" (torch.svd_lowrank, N subspace iterations)' },
  olora: { statistic: "weight", reference: 'PEFT 0.21 "olora"' },
  milora: { statistic: "weight", reference: "MiLoRA authors' svd_init.py, mode min" },
  mica: { statistic: "weight", reference: 'PEFT 0.21 "mica"' },
  orthogonal: { statistic: "weight", reference: 'PEFT 0.21 "orthogonal"' },
  loftq: { statistic: "weight", reference: 'PEFT 0.21 "loftq" (4-bit NF4, loftq_iter)' },
  eva: { statistic: "inputs", reference: 'PEFT 0.21 "eva" (get_eva_state_dict)' },
  "corda-ipm": { statistic: "covariance", reference: 'PEFT 0.21 "corda", corda_method="ipm"' },
  "corda-kpm": { statistic: "covariance", reference: 'PEFT 0.21 "corda", corda_method="kpm"' },
  "lora-ga": { statistic: "gradient", reference: 'PEFT 0.21 "lora_ga" (preprocess_loraga)' },
  "lora-one": { statistic: "gradient", reference: "LoRA-One authors' run_exp.py, direction LoRA-One, scale stable" },
} as const satisfies Record<string, { statistic: InitStatistic; reference: string }>;

export type InitName = keyof typeof INIT_METHODS;

/** A parsed --init value. */
export interface InitMethod {
  name: InitName;
  /** pissa-niter-N's N. */
  niter?: number;
}

/** Parses an --init value such as "olora" or "pissa-niter-4"; throws one line listing the valid names. */
export function parseInitMethod(text: string): InitMethod {
  const niter = /^pissa-niter-(\d+)$/.exec(text);
  if (niter) return { name: "pissa-niter-N", niter: Number(niter[1]) };
  if (text in INIT_METHODS && text !== "pissa-niter-N") return { name: text as InitName };
  throw new Error(`unknown LoRA init "${text}": use one of random, gaussian, svd, ${Object.keys(INIT_METHODS).join(", ")}`);
}

export const initStatistic = (m: InitMethod): InitStatistic => INIT_METHODS[m.name].statistic;

export interface InitContext {
  rank: number;
  alpha: number;
  rslora?: boolean;
  /** Seeds the random parts (pissa-niter-N, orthogonal, lora-ga), per module by its path. */
  seed?: number;
  /** loftq's alternating iterations; default 1 (PEFT's loftq_iter). */
  loftqIterations?: number;
  /** LoRA-GA's and LoRA-One's γ; defaults 16 and 128 (each reference's). */
  stableGamma?: number;
  /** corda-*: C of each module (InputCovariance.mean). */
  covariance?: (path: string) => Tensor;
  /** lora-ga, lora-one: G of each module (GradientMean.mean). */
  gradient?: (path: string) => Tensor;
  /** eva: EvaState.result(). */
  eva?: ReadonlyMap<string, EvaLayer>;
}

/** The method as a ModuleInit for addLora, given what its statistic needs. */
export function moduleInit(m: InitMethod, c: InitContext): ModuleInit {
  const scaling = loraScale(c.alpha, c.rank, c.rslora ?? false);
  const rs = { rank: c.rank, scaling };
  const random = (path: string) => seededRandom(deriveSeed(c.seed ?? 0, path));
  const need = <T>(what: T | undefined, name: string): T => {
    if (what === undefined)
      throw new Error(`--init ${m.name} needs the calibration ${name} of each module: run the calibration pass first`);
    return what;
  };
  switch (m.name) {
    case "pissa":
      return (_, W) => pissa(W, rs);
    case "pissa-niter-N":
      return (path, W) => pissaNiter(W, { ...rs, niter: m.niter ?? 0, random: random(path) });
    case "olora":
      return (_, W) => olora(W, rs);
    case "milora":
      return (_, W) => milora(W, rs);
    case "mica":
      return (_, W) => mica(W, rs);
    case "orthogonal":
      return (path, W) => orthogonal(W, { rank: c.rank, random: random(path) });
    case "loftq":
      return (_, W) => loftq(W, { rank: c.rank, iterations: c.loftqIterations });
    case "corda-ipm":
    case "corda-kpm": {
      const covariance = need(c.covariance, "input covariance");
      return (path, W) => corda(W, covariance(path), { ...rs, mode: m.name === "corda-ipm" ? "ipm" : "kpm" });
    }
    case "lora-ga": {
      const gradient = need(c.gradient, "gradient");
      return (path, W) => loraGa(W, gradient(path), { ...rs, stableGamma: c.stableGamma, random: random(path) });
    }
    case "lora-one": {
      const gradient = need(c.gradient, "gradient");
      return (path) => loraOne(gradient(path), { rank: c.rank, stableGamma: c.stableGamma });
    }
    case "eva": {
      const eva = need(c.eva, "EVA result");
      return (path, W) => {
        const layer = eva.get(path);
        if (!layer) throw new Error(`EVA has no result for ${path}: was it among the calibrated layers?`);
        if (layer.rank === 0) return null;
        return { A: layer.A, B: torch.zeros([W.shape[0], layer.rank], { device: W.device }), alpha: layer.alpha };
      };
    }
  }
}
