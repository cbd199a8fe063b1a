// A linear layer y = x Wᵀ + b with an optional LoRA adapter beside the frozen weight.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { LoRA } from "./lora.js";

export class Linear {
  lora: LoRA | null = null;

  constructor(
    public weight: Tensor,
    public bias: Tensor | null,
  ) {}

  get inFeatures(): number { return this.weight.size(1); }
  get outFeatures(): number { return this.weight.size(0); }

  forward(x: Tensor): Tensor {
    const y = torch.linear(x, this.weight, this.bias);
    if (!this.lora) return y;
    return torch.tidy(() => y.add(this.lora!.forward(x)));
  }
}
