// Every LoRA initialization svdlora can start from beyond random and gaussian (model/lora.ts) and
// the teacher SVD (lowrank/factors.ts): parse a method name, learn which calibration statistic it
// needs, and turn it into a ModuleInit for addLora.
import { loraScale } from "../../util/lora-scale.js";
import type { ModuleInit } from "../../model/lora.js";
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import { deriveSeed } from "../random.js";
import { seededRandom } from "./common.js";
import type { InitMethod } from "./methods.js";
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
export * from "./methods.js";
export * from "./weight.js";

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
