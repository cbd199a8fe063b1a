// Turning encoded samples into model inputs: seeded epoch order, padded or packed batches.
import { type Encoded } from "../data/types.js";
import { IGNORE_INDEX, blockCausalMask, packBatches, padBatch } from "../data/format.js";
import { Random } from "../data/probability/random.js";
import * as torch from "../torch/index.js";
import type { ForwardOptions } from "../model/qwen2.js";

export interface Batch {
  ids: torch.Tensor;
  labels: torch.Tensor;
  options: ForwardOptions;
  /** Real (non-padding) tokens in the batch. */
  tokens: number;
  /** Targets that count in the loss (labels ≠ −100 after the shift). */
  targets: number;
}

/** The sample order of an epoch: a seeded shuffle, the same on every machine and after a resume. */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  return new Random(seed * 1000 + epoch).shuffle(Array.from({ length: n }, (_, i) => i));
}

function countTargets(labels: number[][]): number {
  return labels.reduce((sum, row) => sum + row.slice(1).filter((l) => l !== IGNORE_INDEX).length, 0);
}

/** Right-padded batch: causal attention alone keeps real tokens from seeing the padding after them. */
export function paddedBatch(samples: Encoded[], padId: number, device: string): Batch {
  const b = padBatch(samples, padId);
  return {
    ids: torch.tensor(b.inputIds, { dtype: "int64", device }),
    labels: torch.tensor(b.labels, { dtype: "int64", device }),
    options: {},
    tokens: samples.reduce((s, e) => s + e.ids.length, 0),
    targets: countTargets(b.labels),
  };
}

/** Samples packed into one row; positions restart and a block-causal mask keeps samples apart. */
export function packedBatch(samples: Encoded[], device: string): Batch {
  const [p] = packBatches(samples, Number.MAX_SAFE_INTEGER);
  const T = p.inputIds[0].length;
  return {
    ids: torch.tensor(p.inputIds, { dtype: "int64", device }),
    labels: torch.tensor(p.labels, { dtype: "int64", device }),
    options: {
      positionIds: torch.tensor(p.positionIds, { dtype: "int64", device }),
      mask: torch.fromBytes(blockCausalMask(p.cuSeqlens), [1, 1, T, T], "bool").to({ device }),
    },
    tokens: T,
    targets: countTargets(p.labels),
  };
}

export function makeBatch(samples: Encoded[], o: { padId: number; device: string; packing: boolean }): Batch {
  return o.packing ? packedBatch(samples, o.device) : paddedBatch(samples, o.padId, o.device);
}
