/**
 * The scale s in ΔW = s · B A: α / r, or α / √r with rsLoRA (PEFT's rule). The one place this
 * formula lives; hf/peft.ts applies it to an adapter's config, lowrank/ and model/ to settings.
 */
export const loraScale = (alpha: number, rank: number, rslora: boolean): number => alpha / (rslora ? Math.sqrt(rank) : rank);
