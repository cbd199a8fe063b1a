// Turning encoded samples into model inputs: seeded epoch order, padded or packed batches.
import type { Encoded } from "../data/types.js";
import { IGNORE_INDEX, blockCausalMask, packBatches, padBatch } from "../data/format.js";
import { Random } from "../data/probability/random.js";
import * as torch from "../torch/index.js";
import type { ArmSegment } from "../model/arms.js";
import type { DType } from "../torch/index.js";
import type { ForwardOptions } from "../model/qwen2.js";

export interface Batch {
  ids: torch.Tensor;
  labels: torch.Tensor;
  options: ForwardOptions;
  /** Real (non-padding) tokens in the batch. */
  tokens: number;
  /** Targets that count in the loss (labels ≠ −100 after the shift). */
  targets: number;
  /** The targets as flat indices into the B·(T − 1) shifted positions, and the ids they predict (int64). */
  targetIndex: torch.Tensor;
  targetIds: torch.Tensor;
  /** A concurrent batch (armsBatch): each arm's share, in the order of its rows and targets. */
  arms?: ArmShare[];
}

/** One arm's part of a concurrent batch: its tokens, and its targets as rows [targetStart, targetStart + targets) of targetIndex. */
export interface ArmShare {
  arm: number;
  tokens: number;
  targets: number;
  targetStart: number;
}

/**
 * The micro-batches of an epoch as [start, end) ranges of its sample order: batches of `size`
 * samples, with the remainder folded into the last one, so no step trains on a small leftover
 * (81 samples in batches of 4: 19 of 4 and one of 5).
 */
export function microBatchRanges(n: number, size: number): [number, number][] {
  const count = Math.max(1, Math.floor(n / size));
  return Array.from({ length: count }, (_, i) => [i * size, i === count - 1 ? n : (i + 1) * size]);
}

/** The sample order of an epoch: a seeded shuffle, the same on every machine and after a resume. */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  return new Random(seed * 1000 + epoch).shuffle(Array.from({ length: n }, (_, i) => i));
}

/** Targets these samples give (position 0 of a sample predicts nothing). */
export const targetCount = (samples: readonly Encoded[]) =>
  samples.reduce((n, s) => n + s.lossMask.filter((on, t) => on && t > 0).length, 0);

// Position t predicts labels[t + 1]; found on the host so the step needs no device-side nonzero().
function targetsOf(labels: number[][], device: string): Pick<Batch, "targets" | "targetIndex" | "targetIds"> {
  const index: number[] = [],
    ids: number[] = [];
  labels.forEach((row, b) => {
    for (let t = 1; t < row.length; t++)
      if (row[t] !== IGNORE_INDEX) {
        index.push(b * (row.length - 1) + t - 1);
        ids.push(row[t]);
      }
  });
  const int64 = { dtype: "int64" as const, device };
  return { targets: index.length, targetIndex: torch.tensor(index, int64), targetIds: torch.tensor(ids, int64) };
}

/** Right-padded batch: causal attention alone keeps real tokens from seeing the padding after them. */
export function paddedBatch(samples: Encoded[], padId: number, device: string): Batch {
  const b = padBatch(samples, padId);
  return {
    ids: torch.tensor(b.inputIds, { dtype: "int64", device }),
    labels: torch.tensor(b.labels, { dtype: "int64", device }),
    options: {},
    tokens: samples.reduce((s, e) => s + e.ids.length, 0),
    ...targetsOf(b.labels, device),
  };
}

/**
 * Packed rows for flash attention are padded to a multiple of this many tokens. cuBLAS picks a
 * kernel for every matrix shape it has not seen, which cost the host ~0.25 ms (up to 4 ms) per
 * product on an H200 against 0.025 ms for a shape seen before (bench/results/
 * 2026-12-01-h200-step-kernels.md); packed rows of any length would make nearly every step's products new.
 */
export const PACKED_LENGTH_MULTIPLE = 64;

/** A packed row and the offsets where its sequences start and end. */
interface PackedRow {
  ids: number[];
  labels: number[];
  positions: number[];
  cuSeqlens: number[];
  maxSeqlen: number;
}

/** The row with padding to a multiple of `multiple` tokens: one more sequence, of padId, that attends only to itself and predicts nothing. */
function padToMultiple(row: PackedRow, multiple: number, padId: number): PackedRow {
  const pad = (multiple - (row.ids.length % multiple)) % multiple;
  if (pad === 0) return row;
  return {
    ids: [...row.ids, ...new Array<number>(pad).fill(padId)],
    labels: [...row.labels, ...new Array<number>(pad).fill(IGNORE_INDEX)],
    positions: [...row.positions, ...Array.from({ length: pad }, (_, t) => t)],
    cuSeqlens: [...row.cuSeqlens, row.ids.length + pad],
    maxSeqlen: Math.max(row.maxSeqlen, pad),
  };
}

/** Samples packed into one row, for flash attention padded to a multiple of `o.lengthMultiple` (default PACKED_LENGTH_MULTIPLE). */
function packedRow(samples: Encoded[], flash: boolean, o: { padId: number; lengthMultiple?: number }): PackedRow {
  const [p] = packBatches(samples, Number.MAX_SAFE_INTEGER);
  const row = { ids: p.inputIds[0], labels: p.labels[0], positions: p.positionIds[0], cuSeqlens: p.cuSeqlens, maxSeqlen: p.maxSeqlen };
  const multiple = o.lengthMultiple ?? PACKED_LENGTH_MULTIPLE;
  return flash && multiple > 1 ? padToMultiple(row, multiple, o.padId) : row;
}

/**
 * Samples packed into one row with positions restarting at each sample. Attention stays inside
 * each sample: packed flash attention where the build has it (CUDA), a block-causal mask otherwise.
 * With flash attention the row is padded to a multiple of `o.lengthMultiple` tokens.
 */
export function packedBatch(
  samples: Encoded[],
  device: string,
  flash = false,
  o: { padId: number; lengthMultiple?: number } = { padId: 0 },
): Batch {
  const p = packedRow(samples, flash, o);
  const T = p.ids.length;
  const positionIds = torch.tensor([p.positions], { dtype: "int64", device });
  return {
    ids: torch.tensor([p.ids], { dtype: "int64", device }),
    labels: torch.tensor([p.labels], { dtype: "int64", device }),
    options: flash
      ? { positionIds, packed: { cuSeqlens: torch.tensor(p.cuSeqlens, { dtype: "int32", device }), maxSeqlen: p.maxSeqlen } }
      : { positionIds, mask: torch.fromBytes(blockCausalMask(p.cuSeqlens), [1, 1, T, T], "bool", device) },
    tokens: samples.reduce((n, e) => n + e.ids.length, 0),
    ...targetsOf([p.labels], device),
  };
}

/** How a run's samples become batches. */
export interface BatchOptions {
  padId: number;
  device: string;
  /** All of a batch's samples in one row (attention kept inside each sample), else padded rows. */
  packing: boolean;
  /** The model's dtype: the flash kernel takes 16-bit floats only. */
  dtype: DType;
  /**
   * Packed rows for flash attention are padded with padId to a multiple of this many tokens
   * (default PACKED_LENGTH_MULTIPLE); 1: not padded, as a calibration pass needs (its statistics
   * must see real tokens only).
   */
  lengthMultiple?: number;
}

/** Packed flash attention is used for packed batches on CUDA, with 16-bit weights, when this build has the kernel. */
export const usesFlashPacking = (device: string, dtype: DType): boolean =>
  device.startsWith("cuda") && (dtype === "bfloat16" || dtype === "float16") && torch.fastKernelsAvailable();

export function makeBatch(samples: Encoded[], o: BatchOptions): Batch {
  return o.packing ? packedBatch(samples, o.device, usesFlashPacking(o.device, o.dtype), o) : paddedBatch(samples, o.padId, o.device);
}

/**
 * Several arms' micro-batches as one batch for a model carrying arms: ids [1, N], each arm's
 * samples laid out as makeBatch lays them out alone (padded [b, t], or packed into one row) and
 * then flattened, one arm after another. Its rows, positions and targets are the arm's own, so
 * every arm's tokens see what they would see alone. Packed on CUDA, the whole batch is one packed
 * row for a single flash-attention call; otherwise each arm attends in its own layout.
 */
export function armsBatch(parts: { arm: number; samples: Encoded[] }[], o: BatchOptions): Batch {
  if (parts.length === 0) throw new Error("armsBatch: no arm has samples");
  const flash = o.packing && usesFlashPacking(o.device, o.dtype);
  const ids: number[] = [],
    labels: number[] = [],
    positions: number[] = [],
    targetIndex: number[] = [],
    targetIds: number[] = [];
  const segments: ArmSegment[] = [];
  const shares: ArmShare[] = [];
  const cuSeqlens = [0];
  let maxSeqlen = 0;
  for (const { arm, samples } of parts) {
    const start = ids.length;
    const targetStart = targetIndex.length;
    let rows: { ids: number[]; labels: number[]; positions: number[] }[];
    let mask: torch.Tensor | undefined;
    if (o.packing) {
      const p = packedRow(samples, flash, o);
      rows = [p];
      for (const end of p.cuSeqlens.slice(1)) cuSeqlens.push(start + end);
      maxSeqlen = Math.max(maxSeqlen, p.maxSeqlen);
      if (!flash) {
        const T = p.ids.length;
        mask = torch.fromBytes(blockCausalMask(p.cuSeqlens), [1, 1, T, T], "bool", o.device);
      }
    } else {
      const b = padBatch(samples, o.padId);
      const T = b.inputIds[0].length;
      rows = b.inputIds.map((row, i) => ({ ids: row, labels: b.labels[i], positions: Array.from({ length: T }, (_, t) => t) }));
    }
    for (const row of rows) {
      const rowStart = ids.length;
      row.labels.forEach((label, t) => {
        if (t > 0 && label !== IGNORE_INDEX) {
          targetIndex.push(rowStart + t - 1);
          targetIds.push(label);
        }
      });
      ids.push(...row.ids);
      labels.push(...row.labels);
      positions.push(...row.positions);
    }
    const tokens = samples.reduce((n, e) => n + e.ids.length, 0);
    segments.push({ arm, start, rows: ids.length - start, batch: rows.length, mask });
    shares.push({ arm, tokens, targets: targetIndex.length - targetStart, targetStart });
  }
  const int64 = { dtype: "int64" as const, device: o.device };
  const options: ForwardOptions = { positionIds: torch.tensor([positions], int64), arms: segments };
  if (flash) options.packed = { cuSeqlens: torch.tensor(cuSeqlens, { dtype: "int32", device: o.device }), maxSeqlen };
  return {
    ids: torch.tensor([ids], int64),
    labels: torch.tensor([labels], int64),
    options,
    tokens: shares.reduce((n, s) => n + s.tokens, 0),
    targets: targetIndex.length,
    targetIndex: torch.tensor(targetIndex, int64),
    targetIds: torch.tensor(targetIds, int64),
    arms: shares,
  };
}
