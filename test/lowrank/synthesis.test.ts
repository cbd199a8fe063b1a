import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spectrumMetrics } from "../../src/lowrank/metrics.js";
import { factoredSvd, reconstruct, truncateSvd } from "../../src/lowrank/svd.js";
import {
  DECAY_FORM,
  NOISE_FORM,
  SYNTHESIS_DEFAULTS,
  type SynthesisOptions,
  disposeDelta,
  factoredDistance,
  synthesisReport,
  synthesizeModule,
  synthesizeTeacher,
} from "../../src/lowrank/synthesis.js";
import * as torch from "../../src/torch/index.js";
import { values } from "../helpers.js";
import { assertValidSvd, gaussian, maxRelativeError, orthonormalityError, relativeDistance, tinyLoras } from "./helpers.js";

const lora = () => ({ B: gaussian(1, 30, 4).mul(0.1), A: gaussian(2, 4, 20).mul(0.1), scale: 2 });
const f64: SynthesisOptions = { targetRank: 12, dtype: "float64", seed: 7 };

describe("synthesizeModule", () => {
  it("without noise: keeps the LoRA triplets, adds an exponential tail on orthogonal directions", () => {
    torch.tidy(() => {
      const l = lora();
      const { delta, info } = synthesizeModule("m", l, { ...f64, noiseScale: 0, decay: 0.2 });
      const low = factoredSvd(l.B, l.A, l.scale, { dtype: "float64" });
      const sigma = values(low.S);
      const expected = [...sigma, ...Array.from({ length: 8 }, (_, j) => sigma[3] * Math.exp(-0.2 * (j + 1)))];
      const s = values(delta.S);
      assert.ok(
        s.every((v, i) => Math.abs(v - expected[i]) <= 1e-12 * expected[0]),
        `spectrum ${s} vs ${expected}`,
      );
      assert.deepEqual([delta.U.shape, delta.Vh.shape, info.rank, info.loraRank], [[30, 12], [12, 20], 12, 4]);
      assert.ok(orthonormalityError(delta.U) < 1e-12 && orthonormalityError(delta.Vh.T) < 1e-12);
      // the LoRA part is untouched: the rank-r truncation is exactly s·B·A
      const dense = l.B.to("float64").matmul(l.A.to("float64")).mul(l.scale);
      assert.ok(relativeDistance(reconstruct(truncateSvd(delta, 4)), dense) < 1e-12);
      assert.ok(delta.U.narrow(1, 4, 8).T.matmul(low.U).abs().max().item() < 1e-12, "extension ⟂ U_r");
      assert.ok(delta.Vh.narrow(0, 4, 8).matmul(low.Vh.T).abs().max().item() < 1e-12, "extension ⟂ V_r");
      assert.equal(info.achievedNoiseRatio, 0);
    });
  });

  for (const noiseScale of [0.1, 0.5, 1.5]) {
    it(`noise ratio ‖ΔW_synth − ΔW_clean‖_F / ‖ΔW_clean‖_F is exactly ${noiseScale} (checked densely)`, () => {
      torch.tidy(() => {
        const l = lora();
        // the tail directions are drawn before the noise, so noiseScale 0 gives this run's ΔW_clean
        const cleanDelta = synthesizeModule("m", l, { ...f64, noiseScale: 0 }).delta;
        const clean = reconstruct(cleanDelta);
        const { delta, info } = synthesizeModule("m", l, { ...f64, noiseScale });
        const ratio = relativeDistance(reconstruct(delta), clean);
        assert.ok(
          Math.abs(factoredDistance(delta, cleanDelta) / clean.norm().item() - ratio) < 1e-10,
          "factoredDistance agrees with dense",
        );
        assert.ok(Math.abs(ratio - noiseScale) < 1e-12, `float64: ratio ${ratio}`);
        assert.ok(Math.abs(info.achievedNoiseRatio - ratio) < 1e-12, `reported ${info.achievedNoiseRatio} vs measured ${ratio}`);
        assertValidSvd(delta, reconstruct(delta), 1e-12, "synth is in SVD form");
        assert.equal(spectrumMetrics(delta.S, 1).numericalRank, 12, "rank exactly K");

        const stored32 = synthesizeModule("m", l, { ...f64, noiseScale, dtype: "float32" });
        const ratio32 = relativeDistance(reconstruct(stored32.delta).to("float64"), clean);
        assert.ok(Math.abs(ratio32 - noiseScale) < 1e-5, `float32 storage: ratio ${ratio32}`);
        assert.ok(Math.abs(stored32.info.achievedNoiseRatio - ratio32) < 1e-6);
      });
    });
  }

  it("noise perturbs directions too, not only the singular values", () => {
    torch.tidy(() => {
      const clean = synthesizeModule("m", lora(), { ...f64, noiseScale: 0 }).delta;
      const noisy = synthesizeModule("m", lora(), { ...f64, noiseScale: 0.3 }).delta;
      assert.ok(relativeDistance(noisy.U.narrow(1, 0, 1).abs(), clean.U.narrow(1, 0, 1).abs()) > 1e-3);
    });
  });

  it("clamps K to min(out, in) and refuses targets below the LoRA rank or a zero delta", () => {
    torch.tidy(() => {
      const small = { B: gaussian(3, 6, 4), A: gaussian(4, 4, 20), scale: 1 };
      assert.equal(synthesizeModule("m", small, { targetRank: 64 }).info.rank, 6);
      assert.throws(() => synthesizeModule("m.q", lora(), { targetRank: 3 }), /^Error: m\.q: target rank 3 is below the LoRA rank 4/);
      assert.throws(
        () => synthesizeModule("m.q", { B: torch.zeros([30, 4]), A: gaussian(2, 4, 20), scale: 2 }),
        /LoRA delta s·B·A is zero/,
      );
      assert.throws(() => synthesizeModule("m", lora(), { noiseScale: -1 }), /noise scale/);
      assert.throws(() => synthesizeModule("m", lora(), { decay: Number.NaN }), /decay/);
      assert.throws(() => synthesizeModule("m", lora(), { targetRank: 2.5 }), /target rank/);
    });
  });
});

describe("synthesizeTeacher", () => {
  it("is reproducible per seed, with independent per-module streams", () => {
    const loras = tinyLoras();
    const a = synthesizeTeacher(loras, { seed: 5, targetRank: 8 });
    const b = synthesizeTeacher(loras, { seed: 5, targetRank: 8 });
    const c = synthesizeTeacher(loras, { seed: 6, targetRank: 8 });
    const q = "model.layers.0.self_attn.q_proj";
    const only = synthesizeTeacher(new Map([[q, loras.get(q)!]]), { seed: 5, targetRank: 8 });
    for (const [p, d] of a.modules) assert.deepEqual(d.U.bytes(), b.modules.get(p)!.U.bytes(), `${p}: same seed, same factors`);
    assert.notDeepEqual(a.modules.get(q)!.U.bytes(), c.modules.get(q)!.U.bytes(), "another seed, other factors");
    assert.deepEqual(only.modules.get(q)!.Vh.bytes(), a.modules.get(q)!.Vh.bytes(), "a module's result does not depend on the others");
    assert.notDeepEqual(a.modules.get(q)!.U.bytes(), a.modules.get("model.layers.1.self_attn.q_proj")!.U.bytes());
    [a, b, c, only].forEach(disposeDelta);
    torch.dispose([...loras.values()]);
  });

  it("records every setting and the source it is given, honours each module's scale, and reports", () => {
    const loras = tinyLoras();
    const down = "model.layers.0.mlp.down_proj";
    loras.set(down, { ...loras.get(down)!, scale: 4 }); // as an alpha_pattern would give it
    const source = { sourceAdapter: "runs/final_model_random", loraRank: 4, loraAlpha: 8 };
    const delta = synthesizeTeacher(loras, { targetRank: 10, noiseScale: 0.2, decay: 0.05, seed: 3 }, source);
    assert.deepEqual(delta.settings, {
      ...SYNTHESIS_DEFAULTS,
      ...{ targetRank: 10, noiseScale: 0.2, decay: 0.05, seed: 3 },
      ...source,
      decayForm: DECAY_FORM,
      noiseForm: NOISE_FORM,
    });
    assert.equal(delta.modules.size, 4);
    assert.equal(delta.info.get("model.layers.0.self_attn.v_proj")!.rank, 8, "clamped to min(8, 16)");
    for (const info of delta.info.values()) assert.ok(Math.abs(info.achievedNoiseRatio - 0.2) < 1e-5);
    assert.equal(delta.info.get(down)!.loraScaling, 4);
    const { B, A } = loras.get(down)!;
    const expected = torch.tidy(() => values(factoredSvd(B, A, 4).S));
    assert.ok(maxRelativeError(delta.info.get(down)!.loraSpectrum, expected) < 1e-6, "the LoRA spectrum is that of 4·B·A");

    const report = synthesisReport(delta);
    assert.match(report, /source adapter: runs\/final_model_random {2}\(LoRA r = 4, alpha = 8\)/);
    assert.match(report, /decay = 0\.05/);
    assert.match(report, /noiseScale = 0\.2/);
    assert.match(report, /model\.layers\.0\.self_attn\.v_proj {2}\[8×16\] {2}r=4 K=8/);
    const anonymous = synthesizeTeacher(new Map([[down, loras.get(down)!]]));
    assert.match(synthesisReport(anonymous), /source adapter: \(in memory\) {2}\(LoRA r = \?, alpha = \?\)/);
    [delta, anonymous].forEach(disposeDelta);
    torch.dispose([...loras.values()]);
  });

  it("holds three tensors per module and leaks nothing per module", () => {
    const loras = tinyLoras();
    disposeDelta(synthesizeTeacher(loras)); // warm-up
    const before = torch.memory().count;
    const delta = synthesizeTeacher(loras);
    assert.equal(torch.memory().count, before + 3 * loras.size);
    disposeDelta(delta);
    assert.equal(torch.memory().count, before);
    const zero = tinyLoras();
    zero.get("model.layers.1.self_attn.q_proj")!.B.zero_();
    assert.throws(() => synthesizeTeacher(zero), /model\.layers\.1\.self_attn\.q_proj: the LoRA delta/);
    assert.equal(torch.memory().count, before + 8, "a failure frees the modules already made (only the adapter remains)");
    torch.dispose([...loras.values(), ...zero.values()]);
  });
});
