import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { AdamW } from "../../src/train/optim.js";
import { assertClose, device, values } from "../helpers.js";

/** A small deterministic PRNG (mulberry32), so gradients do not depend on libtorch. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

const param = (data: number[], dtype: "float32" | "float64" = "float32") => torch.tensor(data, { dtype, device }).requiresGrad_();

function setGrad(p: torch.Tensor, g: number[] | null): void {
  torch.tidy(() => {
    p.grad = g === null ? null : torch.tensor(g, { dtype: p.dtype, device });
  });
}

/** PyTorch's documented AdamW algorithm, in float64 JS numbers, for one parameter. */
class ReferenceAdamW {
  m: number[];
  v: number[];
  t = 0;
  constructor(
    public p: number[],
    private beta1 = 0.9,
    private beta2 = 0.999,
    private eps = 1e-8,
    private wd = 0.01,
  ) {
    this.m = p.map(() => 0);
    this.v = p.map(() => 0);
  }
  step(g: number[], lr: number): void {
    this.t++;
    for (let i = 0; i < this.p.length; i++) {
      this.p[i] -= lr * this.wd * this.p[i];
      this.m[i] = this.beta1 * this.m[i] + (1 - this.beta1) * g[i];
      this.v[i] = this.beta2 * this.v[i] + (1 - this.beta2) * g[i] * g[i];
      const mHat = this.m[i] / (1 - this.beta1 ** this.t);
      const vHat = this.v[i] / (1 - this.beta2 ** this.t);
      this.p[i] -= (lr * mHat) / (Math.sqrt(vHat) + this.eps);
    }
  }
}

test("AdamW's first two steps match hand-computed values", () => {
  const p = param([1, -2], "float64");
  const opt = new AdamW([p], { lr: 0.1, weightDecay: 0.1 });
  setGrad(p, [0.5, 0.25]);
  opt.step();
  // Step 1: m̂ = g and √v̂ = |g|, so p ← 0.99·p − 0.1·g/(|g| + ε).
  const p1 = [0.99 * 1 - (0.1 * 0.5) / (0.5 + 1e-8), 0.99 * -2 - (0.1 * 0.25) / (0.25 + 1e-8)];
  assertClose(values(p), p1, 1e-15, 1e-14, "step 1");
  assertClose(values(p), [0.890000002, -2.0799999960000002], 1e-15, 1e-14, "step 1 (decimal)");
  setGrad(p, [-0.5, 0.25]);
  opt.step();
  // Step 2, first element: m = 0.9·0.05 − 0.05 = −0.005, m̂ = −0.005/0.19; v̂ = 0.00049975/0.001999 = 0.25.
  // Second element: the same gradient twice, so m̂ = 0.25 and v̂ = 0.0625.
  const p2 = [0.99 * p1[0] + (0.1 * (0.005 / 0.19)) / (0.5 + 1e-8), 0.99 * p1[1] - (0.1 * 0.25) / (0.25 + 1e-8)];
  assertClose(values(p), p2, 1e-15, 1e-13, "step 2");
  assert.equal(opt.stepCount(0), 2);
  opt.dispose();
});

test("AdamW matches a float64 re-implementation over several steps, with weight decay and a changing lr", () => {
  const rand = prng(7);
  const shapes = [12, 5];
  const init = shapes.map((n) => Array.from({ length: n }, () => rand() * 4));
  const hyper = { betas: [0.85, 0.99] as [number, number], eps: 1e-6, weightDecay: 0.1 };
  const p64 = init.map((d) => param(d, "float64"));
  const p32 = init.map((d) => param(d, "float32"));
  const opt64 = new AdamW(p64, { lr: 0.05, ...hyper });
  const opt32 = new AdamW(p32, { lr: 0.05, ...hyper });
  const refs = init.map((d) => new ReferenceAdamW(d.slice(), 0.85, 0.99, 1e-6, 0.1));
  for (let step = 0; step < 8; step++) {
    const lr = 0.05 * (1 - step / 10);
    const grads = shapes.map((n) => Array.from({ length: n }, () => rand() * (step + 1)));
    for (const [opt, ps] of [
      [opt64, p64],
      [opt32, p32],
    ] as const) {
      opt.setLr(lr);
      ps.forEach((p, i) => {
        setGrad(p, grads[i]);
      });
      opt.step();
      opt.zeroGrad();
    }
    refs.forEach((r, i) => {
      r.step(grads[i], lr);
    });
  }
  refs.forEach((r, i) => {
    assertClose(values(p64[i]), r.p, 1e-13, 1e-12, `float64 param ${i}`);
    assertClose(values(p32[i]), r.p, 2e-6, 1e-6, `float32 param ${i}`);
  });
  opt64.dispose();
  opt32.dispose();
});

test("AdamW skips parameters without a gradient: no decay, no state, own step count", () => {
  const a = param([1, 2], "float64");
  const b = param([3, 4], "float64");
  const opt = new AdamW([a, b], { lr: 0.1, weightDecay: 0.5 });
  const refA = new ReferenceAdamW([1, 2], 0.9, 0.999, 1e-8, 0.5);
  const refB = new ReferenceAdamW([3, 4], 0.9, 0.999, 1e-8, 0.5);
  for (let step = 0; step < 4; step++) {
    const ga = [0.1 * step - 0.2, 0.3];
    setGrad(a, ga);
    refA.step(ga, 0.1);
    if (step % 2 === 1) {
      const gb = [0.5, -0.1 * step];
      setGrad(b, gb);
      refB.step(gb, 0.1);
    }
    if (step === 0) assert.deepEqual(values(b), [3, 4], "b untouched while it has no gradient");
    opt.step();
    opt.zeroGrad();
    assert.equal(a.grad, null);
  }
  assert.equal(opt.stepCount(0), 4);
  assert.equal(opt.stepCount(1), 2);
  const dict = opt.stateDict();
  assert.equal(dict.state[1]?.step, 2);
  torch.dispose(dict);
  assertClose(values(a), refA.p, 1e-14, 1e-13, "a");
  assertClose(values(b), refB.p, 1e-14, 1e-13, "b");
  opt.dispose();
});

/** Runs a tiny regression for `steps` updates with a real backward pass and a changing lr. */
function trainSteps(opt: AdamW, w: torch.Tensor, from: number, to: number): void {
  const x = torch.tensor(
    [
      [1, 2, 3],
      [0.5, -1, 2],
    ],
    { device },
  );
  for (let step = from; step < to; step++) {
    torch.tidy(() => {
      opt.setLr(0.01 * (1 + Math.cos(step)));
      w.matmul(x.T)
        .sub(step * 0.1)
        .square()
        .mean()
        .backward();
      opt.step();
      opt.zeroGrad();
    });
  }
  x.dispose();
}

const freshWeights = () => {
  torch.manualSeed(3);
  return torch.randn([4, 3], { device }).requiresGrad_();
};

test("resuming from a state dict gives bitwise the same parameters as an uninterrupted run", () => {
  const straight = freshWeights();
  const straightOpt = new AdamW([straight], { weightDecay: 0.05 });
  trainSteps(straightOpt, straight, 0, 10);

  const resumed = freshWeights();
  const firstOpt = new AdamW([resumed], { weightDecay: 0.05 });
  trainSteps(firstOpt, resumed, 0, 4);
  const saved = firstOpt.stateDict();
  // The saved tensors are copies: more steps on the first optimizer must not change them.
  const savedExpAvg = values(saved.state[0]!.expAvg);
  trainSteps(firstOpt, freshWeights(), 4, 5);
  assert.deepEqual(values(saved.state[0]!.expAvg), savedExpAvg);
  firstOpt.dispose();

  const secondOpt = new AdamW([resumed], { lr: 123 });
  secondOpt.loadStateDict(saved);
  torch.dispose(saved);
  assert.equal(secondOpt.stepCount(), 4);
  trainSteps(secondOpt, resumed, 4, 10);
  assert.deepEqual(values(resumed), values(straight));

  // Without the state the run differs, so the comparison above can fail.
  const restarted = freshWeights();
  const restartOpt = new AdamW([restarted], { weightDecay: 0.05 });
  trainSteps(restartOpt, restarted, 0, 4);
  restartOpt.dispose();
  const restartOpt2 = new AdamW([restarted], { weightDecay: 0.05 });
  trainSteps(restartOpt2, restarted, 4, 10);
  assert.notDeepEqual(values(restarted), values(straight));
  for (const o of [straightOpt, secondOpt, restartOpt2]) o.dispose();
});

test("loadStateDict restores hyperparameters and rejects a state of the wrong shape", () => {
  const w = param([1, 2, 3]);
  const opt = new AdamW([w], { lr: 0.5, betas: [0.8, 0.9], eps: 1e-5, weightDecay: 0 });
  setGrad(w, [1, 1, 1]);
  opt.step();
  const dict = opt.stateDict();
  const other = new AdamW([w]);
  other.loadStateDict(dict);
  assert.equal(other.lr, 0.5);
  const reloaded = other.stateDict();
  assert.deepEqual(reloaded.hyper, { lr: 0.5, betas: [0.8, 0.9], eps: 1e-5, weightDecay: 0 });

  const v = param([1, 2]);
  assert.throws(() => new AdamW([v]).loadStateDict(dict), /shape \[3\], the parameter \[2\]/);
  assert.throws(() => new AdamW([w, v]).loadStateDict(dict), /1 parameters, the optimizer 2/);
  assert.throws(() => new AdamW([w], { betas: [1, 0.9] }), /beta1/);
  assert.throws(() => new AdamW([torch.zeros([2])]), /does not require gradients/);
  torch.dispose([dict, reloaded]);
  opt.dispose();
  other.dispose();
});

test("AdamW.stepAll steps each optimizer as step() does (here, off CUDA, one by one)", () => {
  torch.manualSeed(8);
  const make = () => [torch.randn([3, 4]), torch.randn([4])].map((t) => t.requiresGrad_());
  const together = [make(), make()];
  const alone = together.map((ps) => ps.map((t) => t.detach().clone().requiresGrad_()));
  const opts = (ps: torch.Tensor[][]) => ps.map((p, k) => new AdamW(p, { lr: [1e-2, 3e-3][k], weightDecay: 0.1 }));
  const [shared, single] = [opts(together), opts(alone)];
  for (let s = 0; s < 3; s++) {
    together.forEach((ps, k) =>
      ps.forEach((p, i) => {
        const g = torch.randn(p.shape);
        p.grad = g;
        alone[k][i].grad = g.clone();
      }),
    );
    AdamW.stepAll(shared);
    for (const o of single) o.step();
  }
  together.forEach((ps, k) => ps.forEach((p, i) => assert.deepEqual(p.toArray(), alone[k][i].toArray(), `optimizer ${k}, param ${i}`)));
});

test("AdamW keeps the live tensor count flat across steps and frees its state on dispose", () => {
  const before = torch.memory().count;
  const w = freshWeights();
  const opt = new AdamW([w]);
  trainSteps(opt, w, 0, 1);
  const afterFirst = torch.memory().count;
  assert.equal(afterFirst, before + 3, "the weight and its two moments");
  trainSteps(opt, w, 1, 6);
  assert.equal(torch.memory().count, afterFirst);
  const dict = opt.stateDict();
  assert.equal(torch.memory().count, afterFirst + 2, "the state dict holds copies");
  opt.loadStateDict(dict);
  torch.dispose(dict);
  assert.equal(torch.memory().count, afterFirst);
  opt.dispose();
  w.dispose();
  assert.equal(torch.memory().count, before);
});
