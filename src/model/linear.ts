// A linear layer y = x Wᵀ + b with an optional LoRA adapter beside the frozen weight, and an
// optional probe that sees its input (how a calibration pass reads layer inputs).
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { LoRA } from "./lora.js";

/** Called with the layer's input x [..., in] on every forward while set. It must not keep x beyond the call without torch.keep. */
export type InputProbe = (x: Tensor) => void;

export class Linear {
  lora: LoRA | null = null;
  /** Set by whoever needs the layer's inputs (train/calibrate.ts) and cleared when done. */
  probe: InputProbe | null = null;

  constructor(
    public weight: Tensor,
    public bias: Tensor | null,
  ) {}

  get inFeatures(): number {
    return this.weight.size(1);
  }
  get outFeatures(): number {
    return this.weight.size(0);
  }

  forward(x: Tensor): Tensor {
    this.probe?.(x);
    const lora = this.lora;
    if (!lora) return torch.linear(x, this.weight, this.bias);
    if (lora.magnitude) return lora.doraForward(x, this.weight, this.bias);
    // Without dropout the layer and its adapter run as one fused node (fewer ops to queue).
    if ((lora.dropout === 0 || !lora.training) && !this.bias?.requiresGrad)
      return torch.loraLinear(x, this.weight, this.bias, lora.A, lora.B, lora.scaling);
    return torch.tidy(() => torch.linear(x, this.weight, this.bias).add(lora.forward(x)));
  }
}
