// A linear layer y = x Wᵀ + b with an optional LoRA adapter beside the frozen weight, or, for
// concurrent arms (arms.ts), one adapter per arm, each applied to its arm's rows; and an optional
// probe that sees its input (how a calibration pass reads layer inputs).
import * as torch from "../torch/index.js";
import type { RowAdapter, Tensor } from "../torch/index.js";
import type { ArmAdapter, ArmRoute } from "./arms.js";
import type { LoRA } from "./lora.js";

/** Called with the layer's input x [..., in] on every forward while set. It must not keep x beyond the call without torch.keep. */
export type InputProbe = (x: Tensor) => void;

export class Linear {
  lora: LoRA | null = null;
  /** Concurrent arms' adapters, one entry per arm (null: that arm does not adapt this projection). */
  arms: (ArmAdapter | null)[] | null = null;
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

  /** y for x [..., in]; a layer carrying arms needs the route that says which rows are whose. */
  forward(x: Tensor, route?: ArmRoute): Tensor {
    this.probe?.(x);
    if (this.arms) return this.armsForward(x, route);
    const lora = this.lora;
    if (!lora) return torch.linear(x, this.weight, this.bias);
    if (lora.magnitude) return lora.doraForward(x, this.weight, this.bias);
    // Without dropout the layer and its adapter run as one fused node (fewer ops to queue).
    if ((lora.dropout === 0 || !lora.training) && !this.bias?.requiresGrad)
      return torch.loraLinear(x, this.weight, this.bias, lora.A, lora.B, lora.scaling);
    return torch.tidy(() => torch.linear(x, this.weight, this.bias).add(lora.forward(x)));
  }

  private armsForward(x: Tensor, route: ArmRoute | undefined): Tensor {
    const arms = this.arms!;
    if (!route) throw new Error(`this layer carries ${arms.length} concurrent arms: a forward must say whose rows are whose (arms)`);
    const adapters: RowAdapter[] = [];
    let dropout = false;
    for (const seg of route.segments) {
      const a = arms[seg.arm];
      if (a === undefined) throw new Error(`arm ${seg.arm} does not exist (${arms.length} arms)`);
      if (!a) continue;
      const rows = { start: seg.start, count: seg.rows };
      adapters.push({ A: a.lora.A, B: a.lora.B, scaling: a.lora.scaling, ...rows });
      if (a.correction) adapters.push({ A: a.correction.A, B: a.correction.B, scaling: a.correction.scaling, ...rows });
      dropout ||= a.lora.training && a.lora.dropout > 0;
    }
    if (!dropout) return torch.multiLoraLinear(x, this.weight, this.bias, adapters);
    // LoRA dropout: each arm draws its mask from its own generator; the layer as a run alone computes it.
    return torch.tidy(() => {
      const x2 = x.reshape(-1, this.inFeatures);
      const deltas = route.segments.map((seg) => {
        const a = arms[seg.arm];
        const xs = x2.narrow(0, seg.start, seg.rows);
        if (!a) return torch.zeros([seg.rows, this.outFeatures], { dtype: x.dtype, device: x.device });
        const d = route.generators ? route.generators.use(seg.arm, () => a.lora.forward(xs)) : a.lora.forward(xs);
        return a.correction ? d.add(a.correction.forward(xs)) : d;
      });
      const y = torch.linear(x, this.weight, this.bias);
      return y.add((deltas.length === 1 ? deltas[0] : torch.cat(deltas, 0)).view(y.shape));
    });
  }
}
