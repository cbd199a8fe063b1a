// Concurrent arms at the model level (model/arms.ts): multiLoraLinear applies each adapter to its
// own rows only; a batch of several arms gives each arm the loss and gradients it gets alone
// (padded, packed, with LoRA dropout drawn from each arm's own generator, with recomputed layers);
// evaluation and generation with one arm's adapter match that adapter alone; misuse is refused.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Encoded } from "../../src/data/types.js";
import { ArmGenerators } from "../../src/model/arms.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { pissa } from "../../src/lowrank/inits/weight.js";
import { type LoraInit, type LoraSettings, type ModuleInit, addLora, armAdapters } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";
import { type RecomputePolicy, evaluationLoss, lossAndBackward } from "../../src/train/backprop.js";
import { armsBatch, makeBatch } from "../../src/train/batches.js";
import { evaluateArmLosses, evaluateLoss } from "../../src/train/evaluate.js";
import { assertClose, values } from "../helpers.js";

const modelDir = new URL("../../../test/fixtures/golden/qwen2-tiny", import.meta.url).pathname;
const relDiff = (a: torch.Tensor, b: torch.Tensor) => torch.tidy(() => a.sub(b).norm().item() / b.norm().item());

// Samples of made-up ids with different lengths and prompt masks (targets from position `prompt` on).
function samples(n: number, seed: number): Encoded[] {
  return Array.from({ length: n }, (_, i) => {
    const length = 9 + ((seed * 7 + i * 5) % 13);
    const prompt = 2 + ((seed + i) % 4);
    return {
      ids: Array.from({ length }, (_, t) => (seed * 31 + i * 17 + t * 7) % 300),
      lossMask: Array.from({ length }, (_, t) => t >= prompt),
      truncated: false,
    };
  });
}

interface Arm {
  init: LoraInit | ModuleInit;
  seed: number;
  samples: Encoded[];
  scale: number;
}
const ARMS: Arm[] = [
  { init: "random", seed: 1, samples: samples(3, 1), scale: 0.5 },
  { init: (_, W) => pissa(W, { rank: 4, scaling: 2 }), seed: 2, samples: samples(4, 2), scale: 1 },
  { init: "gaussian", seed: 3, samples: samples(2, 3), scale: 0.25 },
];
const lora = (dropout = 0): LoraSettings => ({ rank: 4, alpha: 8, dropout, targets: ["q_proj", "v_proj", "down_proj"] });

// Random init leaves B = 0, which would make A's gradient zero: give B values, the same for the arm alone and together.
function nudge(Bs: torch.Tensor[], seed: number): void {
  torch.manualSeed(100 + seed);
  torch.noGrad(() => Bs.forEach((B) => B.normal_(0, 0.05)));
}

/** Each arm alone: its loss and its factors' gradients. */
function alone(arm: Arm, o: { packing: boolean; dropout?: number; recompute?: RecomputePolicy }) {
  torch.manualSeed(arm.seed);
  const model = loadCausalLM(modelDir);
  const loras = [...addLora(model, lora(o.dropout), arm.init).values()];
  nudge(
    loras.map((l) => l.B),
    arm.seed,
  );
  torch.manualSeed(1000 + arm.seed); // where the arm's dropout draws start
  const r = lossAndBackward(model, makeBatch(arm.samples, { padId: 0, device: "cpu", packing: o.packing, dtype: "float32" }), {
    gradScale: arm.scale,
    recompute: o.recompute,
  });
  return { loss: r.loss.item(), grads: loras.flatMap((l) => [l.A.grad!, l.B.grad!]) };
}

/** The arms together on one model. */
function together(arms: Arm[], o: { packing: boolean; dropout?: number; recompute?: RecomputePolicy; armsTogether?: boolean }) {
  const model = loadCausalLM(modelDir);
  const generators = new ArmGenerators("cpu");
  const adapters = arms.map((arm) => {
    torch.manualSeed(arm.seed);
    const a = armAdapters(model, lora(o.dropout), arm.init);
    nudge(
      [...a.values()].map((x) => x.lora.B),
      arm.seed,
    );
    torch.manualSeed(1000 + arm.seed);
    generators.add();
    return a;
  });
  model.attachArms(adapters, generators);
  const b = armsBatch(
    arms.map((arm, k) => ({ arm: k, samples: arm.samples })),
    { padId: 0, device: "cpu", packing: o.packing, dtype: "float32" },
  );
  const r = lossAndBackward(model, b, { gradScale: arms.map((a) => a.scale), recompute: o.recompute, armsTogether: o.armsTogether });
  return {
    model,
    batch: b,
    losses: values(r.loss),
    grads: adapters.map((a) => [...a.values()].flatMap((x) => [x.lora.A.grad!, x.lora.B.grad!])),
  };
}

function assertArmsMatch(o: { packing: boolean; dropout?: number; recompute?: RecomputePolicy }) {
  const t = together(ARMS, o);
  ARMS.forEach((arm, k) => {
    const a = alone(arm, o);
    assert.ok(Math.abs(t.losses[k] - a.loss) <= 1e-5 * a.loss, `${arm.init}: loss ${t.losses[k]} alone ${a.loss}`);
    a.grads.forEach((g, i) => {
      const d = relDiff(t.grads[k][i], g);
      assert.ok(d <= 1e-5, `${arm.init} gradient ${i}: relative difference ${d}`);
    });
  });
}

test("multiLoraLinear adds each adapter to its own rows only; its gradients are those of the parts alone", () => {
  torch.manualSeed(0);
  const x = torch.randn([1, 10, 8]).requiresGrad_();
  const W = torch.randn([6, 8]);
  const bias = torch.randn([6]);
  const f = (r: number, trainable = true) => {
    const A = torch.randn([r, 8]).mul(0.5);
    const B = torch.randn([6, r]).mul(0.5);
    return trainable ? { A: A.requiresGrad_(), B: B.requiresGrad_() } : { A, B };
  };
  const [a0, a1, c1] = [f(2), f(3), f(2, false)];
  const y = torch.multiLoraLinear(x, W, bias, [
    { ...a0, scaling: 2, start: 0, count: 4 },
    { ...a1, scaling: 0.5, start: 4, count: 6 },
    { ...c1, scaling: -2, start: 4, count: 6 },
  ]);
  const g = torch.randn([1, 10, 6]);
  torch.backward([y], [g]);

  // The same through plain autograd, part by part.
  const xs = x.detach().requiresGrad_();
  const [p0, p1] = [a0, a1].map(({ A, B }) => ({ A: A.detach().requiresGrad_(), B: B.detach().requiresGrad_() }));
  const lora = (z: torch.Tensor, A: torch.Tensor, B: torch.Tensor, s: number) => torch.linear(torch.linear(z, A), B).mul(s);
  const top = xs.narrow(1, 0, 4);
  const bottom = xs.narrow(1, 4, 6);
  const expected = torch.cat(
    [
      torch.linear(top, W, bias).add(lora(top, p0.A, p0.B, 2)),
      torch
        .linear(bottom, W, bias)
        .add(lora(bottom, p1.A, p1.B, 0.5))
        .add(lora(bottom, c1.A, c1.B, -2)),
    ],
    1,
  );
  torch.backward([expected], [g]);
  assertClose(values(y), values(expected), 1e-5, 1e-5, "y");
  for (const [what, got, want] of [
    ["x", x, xs],
    ["A0", a0.A, p0.A],
    ["B0", a0.B, p0.B],
    ["A1", a1.A, p1.A],
    ["B1", a1.B, p1.B],
  ] as const)
    assertClose(values(got.grad!), values(want.grad!), 1e-5, 1e-5, `d${what}`);
  assert.equal(c1.A.grad, null);

  assert.throws(
    () => torch.multiLoraLinear(x, W, bias, [{ ...a0, scaling: 1, start: 8, count: 4 }]),
    /adapter 0 covers rows \[8, 12\) of 10/,
  );
  assert.throws(() => torch.multiLoraLinear(x, W.clone().requiresGrad_(), null, []), /base weight and bias must be frozen/);
});

test("multiLoraLinear batched (adapters of one shape on disjoint rows share bmm's) gives the unbatched values and gradients", () => {
  torch.manualSeed(1);
  const x = torch.randn([2, 13, 8], { dtype: "float64" });
  const W = torch.randn([6, 8], { dtype: "float64" });
  const bias = torch.randn([6], { dtype: "float64" });
  const factors = (r: number, trainable: boolean) => {
    const A = torch.randn([r, 8], { dtype: "float64" }).mul(0.5);
    const B = torch.randn([6, r], { dtype: "float64" }).mul(0.5);
    return trainable ? { A: A.requiresGrad_(), B: B.requiresGrad_() } : { A, B };
  };
  // Three rank-2 arms of uneven lengths (one batched unit, padded to 9 rows), a frozen correction on
  // the third arm's rows (a unit of its own: it overlaps them), a rank-3 arm (its own shape), and
  // rows 24–25 that no adapter covers.
  const adapters = [
    { ...factors(2, true), scaling: 2, start: 0, count: 5 },
    { ...factors(2, true), scaling: 0.7, start: 5, count: 9 },
    { ...factors(2, true), scaling: 16 / 12, start: 14, count: 3 },
    { ...factors(2, false), scaling: -16 / 12, start: 14, count: 3 },
    { ...factors(3, true), scaling: 1.5, start: 17, count: 7 },
  ];
  const g = torch.randn([2, 13, 6], { dtype: "float64" });
  const run = (batched: boolean) => {
    const xs = x.clone().requiresGrad_();
    const own = adapters.map((a) => ({
      ...a,
      A: a.A.requiresGrad ? a.A.detach().requiresGrad_() : a.A,
      B: a.B.requiresGrad ? a.B.detach().requiresGrad_() : a.B,
    }));
    const y = torch.multiLoraLinear(xs, W, bias, own, batched);
    torch.backward([y], [g]);
    return { y, grads: [xs, ...own.flatMap((a) => [a.A, a.B])].map((t) => t.grad) };
  };
  const [plain, batched] = [run(false), run(true)];
  assertClose(values(batched.y), values(plain.y), 1e-12, 1e-12, "y");
  plain.grads.forEach((want, i) => {
    const got = batched.grads[i];
    if (want === null) assert.equal(got, null, `gradient ${i}: none, as unbatched`);
    else assertClose(values(got!), values(want), 1e-12, 1e-12, `gradient ${i}`);
  });
  assert.equal(batched.grads[7], null, "the frozen correction gets no gradient");
});

test("the loss head over every arm's rows in shared chunks (as off the CPU) gives each arm's loss and gradients as arm by arm", () => {
  const o = { packing: false };
  const [byArm, shared] = [together(ARMS, { ...o, armsTogether: false }), together(ARMS, { ...o, armsTogether: true })];
  assertClose(shared.losses, byArm.losses, 1e-6, 1e-6, "losses");
  shared.grads.forEach((grads, k) =>
    grads.forEach((g, i) => assert.ok(relDiff(g, byArm.grads[k][i]) <= 1e-6, `arm ${k} gradient ${i}: ${relDiff(g, byArm.grads[k][i])}`)),
  );
  const evaluated = (armsTogether: boolean) => values(evaluationLoss(byArm.model, byArm.batch, 7, armsTogether));
  assertClose(evaluated(true), evaluated(false), 1e-6, 1e-6, "held-out losses, in chunks of 7 rows that cross the arms' boundaries");
  assertClose(evaluated(false), byArm.losses, 1e-5, 1e-5, "and the training losses of the same batch");
});

test("arms in one padded batch each get the loss and gradients they get alone (PiSSA's W as base + correction)", () => {
  assertArmsMatch({ packing: false });
});

test("arms in one packed batch (block-causal per arm on the CPU) each get what they get alone", () => {
  assertArmsMatch({ packing: true });
});

test("LoRA dropout: each arm draws its masks from its own generator, also in recomputed layers", () => {
  assertArmsMatch({ packing: false, dropout: 0.5 });
  assertArmsMatch({ packing: false, dropout: 0.5, recompute: "all" });
});

test("armsBatch lays each arm out as makeBatch does alone, one after another", () => {
  const parts = ARMS.map((a, k) => ({ arm: k, samples: a.samples }));
  for (const packing of [false, true]) {
    const b = armsBatch(parts, { padId: 0, device: "cpu", packing, dtype: "float32" });
    let start = 0;
    let targetStart = 0;
    parts.forEach((p, k) => {
      const own = makeBatch(p.samples, { padId: 0, device: "cpu", packing, dtype: "float32" });
      const seg = b.options.arms![k];
      assert.deepEqual([seg.arm, seg.start, seg.rows, seg.batch], [k, start, own.ids.numel(), own.ids.size(0)]);
      assert.deepEqual(values(b.ids.narrow(1, start, seg.rows)), values(own.ids));
      assert.deepEqual(b.arms![k], { arm: k, tokens: own.tokens, targets: own.targets, targetStart });
      assert.deepEqual(values(b.targetIds.narrow(0, targetStart, own.targets)), values(own.targetIds));
      assert.equal(Boolean(seg.mask), packing);
      start += seg.rows;
      targetStart += own.targets;
    });
    assert.equal(b.ids.numel(), start);
  }
});

test("evaluation and generation with one arm's adapter match that adapter alone", () => {
  const t = together(ARMS, { packing: false });
  const evalSets = ARMS.map((_, k) => ({ arm: k, samples: samples(5, 10 + k), batchSize: 2 }));
  const losses = evaluateArmLosses(t.model, evalSets, { padId: 0, device: "cpu" });
  ARMS.forEach((arm, k) => {
    torch.manualSeed(arm.seed);
    const model = loadCausalLM(modelDir);
    const loras = [...addLora(model, lora(), arm.init).values()];
    nudge(
      loras.map((l) => l.B),
      arm.seed,
    );
    const own = evaluateLoss(model, evalSets[k].samples, { batchSize: 2, padId: 0, device: "cpu" });
    assert.ok(Math.abs(losses[k] - own) <= 1e-5 * own, `${arm.init}: ${losses[k]} alone ${own}`);
    const prompt = [3, 14, 15, 92, 65];
    assert.deepEqual(
      t.model.generate(prompt, { maxNewTokens: 6, stopTokenIds: [], arm: k }),
      model.generate(prompt, { maxNewTokens: 6, stopTokenIds: [] }),
    );
  });
});

test("a model carrying arms needs every forward to say whose rows are whose; arms and a plain adapter do not mix", () => {
  const model = loadCausalLM(modelDir);
  const ids = torch.tensor([[1, 2, 3, 4]], { dtype: "int64" });
  assert.throws(() => model.hidden(ids, { arms: [{ arm: 0, start: 0, rows: 4, batch: 1 }] }), /arms given but the model carries none/);
  const generators = new ArmGenerators("cpu");
  generators.add();
  generators.add();
  const adapters = [armAdapters(model, lora(), "random"), armAdapters(model, lora(), "random")];
  model.attachArms(adapters, generators);
  assert.equal(model.armCount, 2);
  assert.throws(() => model.hidden(ids, { arms: [{ arm: 0, start: 0, rows: 3, batch: 1 }] }), /must cover the 4 rows in order/);
  assert.throws(() => model.hidden(ids, { arms: [{ arm: 5, start: 0, rows: 4, batch: 1 }] }), /arm 5 does not exist \(2 arms\)/);
  assert.throws(() => model.hidden(ids), /the model carries 2 arms: say whose rows are whose/);
  model.detachArms();
  assert.equal(model.armCount, 0);
  addLora(model, lora(), "random");
  const more = new ArmGenerators("cpu");
  more.add();
  assert.throws(() => model.attachArms([armAdapters(model, lora(), "random")], more), /already has an adapter of its own/);
});
