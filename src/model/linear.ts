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

  get inFeatures(): number {
    return this.weight.size(1);
  }
  get outFeatures(): number {
    return this.weight.size(0);
  }

  forward(x: Tensor): Tensor {
    const lora = this.lora;
    if (!lora) return torch.linear(x, this.weight, this.bias);
    // Without dropout the layer and its adapter run as one fused node (fewer ops to queue).
    if ((lora.dropout === 0 || !lora.training) && !this.bias?.requiresGrad)
      return torch.loraLinear(x, this.weight, this.bias, lora.A, lora.B, lora.scaling);
    return torch.tidy(() => torch.linear(x, this.weight, this.bias).add(lora.forward(x)));
  }
}
