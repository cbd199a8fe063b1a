// The init methods by name: parsing an --init value and what each is computed from. No tensors
// here, so that settings and --help can list the methods without loading libtorch.

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
