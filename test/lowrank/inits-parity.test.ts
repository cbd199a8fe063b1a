// Parity of lowrank/inits with the reference implementations, on the golden files that
// scripts/golden/make_inits.py makes with PEFT (and the MiLoRA and LoRA-One authors' formulas) for
// the tiny Qwen2 of test/fixtures/golden/qwen2-tiny: rank 8, alpha 16 on q_proj, v_proj, up_proj.
// Factors, residual base weights, statistics: float32, max |Δ| ≤ 1e-5 unless said otherwise.
// Singular vectors are defined up to sign, so factors are compared after flipping each of svdlora's
// triplets to PEFT's sign (A's row and B's column together: s·B·A and the residual do not change).
// PEFT's random draws (test matrices of torch.svd_lowrank, the orthogonal init's Gaussians) are
// recorded in the fixture and replayed; kaiming and gaussian inits are compared in distribution.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { type TestContext, test } from "node:test";
import { loadSafetensors } from "../../src/hf/safetensors.js";
import {
  EvaState,
  GradientMean,
  InputCovariance,
  type RandomSource,
  corda,
  loftq,
  loraGa,
  loraOne,
  maskedRows,
  mica,
  milora,
  olora,
  orthogonal,
  pissa,
  pissaNiter,
  sharedInputs,
} from "../../src/lowrank/inits/index.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { addLora } from "../../src/model/lora.js";
import type { CausalLM } from "../../src/model/qwen2.js";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { values } from "../helpers.js";

const golden = (p: string) => new URL(`../../../test/fixtures/golden/${p}`, import.meta.url).pathname;
const dir = golden("inits");
const ABSENT =
  "the PEFT init fixtures are absent: run `python3 scripts/golden/make_inits.py test/fixtures/golden/inits` where torch, transformers and peft are installed, and commit the files";

interface Manifest {
  rank: number;
  alpha: number;
  targets: string[];
  methods: Record<string, { file: string; ranks?: Record<string, number>; alpha_pattern?: Record<string, number> }>;
  skipped: Record<string, string>;
}
const manifest: Manifest | null = fs.existsSync(path.join(dir, "manifest.json"))
  ? JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"))
  : null;
const TOL = 1e-5;

const load = (file: string) => loadSafetensors(path.join(dir, file));
const freshModel = () => loadCausalLM(golden("qwen2-tiny"));
const targetPaths = (model: CausalLM) => [...model.linears().keys()].filter((p) => manifest!.targets.includes(p.split(".").pop()!));
const maxDiff = (a: Tensor, b: Tensor) => torch.tidy(() => a.sub(b).abs().max().item());
const relative = (a: Tensor, b: Tensor) => torch.tidy(() => a.sub(b).norm().item() / b.norm().item());

/** Checks |got − want| ≤ tol and reports the worst difference of each quantity. */
function close(t: TestContext, what: string, got: Tensor, want: Tensor, tol = TOL): number {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const d = maxDiff(got, want);
  assert.ok(d <= tol, `${what}: max |Δ| ${d} > ${tol}`);
  return d;
}

/** Runs one method's parity test; skipped while the fixture is absent or lacks the method. */
function parity(method: string, title: string, body: (ref: Map<string, Tensor>, t: TestContext) => void): void {
  const entry = manifest?.methods[method];
  const skip = !manifest
    ? ABSENT
    : !entry
      ? `the fixture has no ${method} (${manifest.skipped[method] ?? "not made"}): rerun scripts/golden/make_inits.py where it can`
      : false;
  test(`${method}: ${title}`, { skip }, (t) => body(load(entry!.file), t));
}

/** Flips svdlora's rank-one terms to the reference's signs: A's row i and B's column i together, or each alone. */
function align(mine: { A: Tensor; B: Tensor }, ref: { A: Tensor; B: Tensor }, jointly = true): { A: Tensor; B: Tensor } {
  return torch.tidy(() => {
    const a = mine.A.mul(ref.A).sum(1),
      b = mine.B.mul(ref.B).sum(0);
    const sign = (d: Tensor) => d.ge(0).to("float32").mul(2).sub(1);
    const [sa, sb] = jointly ? [sign(a.add(b)), sign(a.add(b))] : [sign(a), sign(b)];
    return { A: mine.A.mul(sa.unsqueeze(1)), B: mine.B.mul(sb) };
  });
}

/** Compares A, B (and the base weight when the fixture has it) for every module; reports the worst. */
function compareModules(
  t: TestContext,
  ref: Map<string, Tensor>,
  paths: string[],
  init: (p: string) => { A: Tensor; B: Tensor; residual?: Tensor },
  o: { jointly?: boolean; residual?: (p: string, aligned: { A: Tensor; B: Tensor }) => Tensor; tol?: number } = {},
): void {
  const worst = { A: 0, B: 0, weight: 0 };
  for (const p of paths) {
    torch.tidy(() => {
      const f = init(p);
      const want = { A: ref.get(`${p}.lora_A`), B: ref.get(`${p}.lora_B`) };
      const aligned = want.A && want.B ? align(f, { A: want.A, B: want.B }, o.jointly ?? true) : f;
      if (want.A) worst.A = Math.max(worst.A, close(t, `${p} lora_A`, aligned.A, want.A, o.tol));
      if (want.B) worst.B = Math.max(worst.B, close(t, `${p} lora_B`, aligned.B, want.B, o.tol));
      const weight = ref.get(`${p}.weight`);
      if (weight) {
        const residual = o.residual ? o.residual(p, aligned) : f.residual;
        assert.ok(residual, `${p}: the fixture has a base weight but svdlora's init leaves W as it is`);
        worst.weight = Math.max(worst.weight, close(t, `${p} base weight`, residual, weight));
      }
    });
  }
  t.diagnostic(
    `max |Δ|: lora_A ${worst.A.toExponential(2)}, lora_B ${worst.B.toExponential(2)}, base weight ${worst.weight.toExponential(2)}`,
  );
}

/** Replays PEFT's recorded normal draws, in order; a draw of another shape is an error. */
function replay(draws: Tensor[]): RandomSource {
  let i = 0;
  return {
    normal(rows, cols, o = {}) {
      const d = draws[i++];
      if (!d || `${d.shape}` !== `${[rows, cols]}`)
        throw new Error(`replay: PEFT drew [${d?.shape ?? "nothing"}] where svdlora asks for [${rows}, ${cols}]`);
      return d.to({ dtype: o.dtype ?? "float32", device: o.device ?? "cpu" });
    },
    permutation() {
      throw new Error("replay: PEFT drew no permutation here");
    },
  };
}

const calibration = () => {
  const c = load("calibration.safetensors");
  const ids = c.get("input_ids")!,
    labels = c.get("labels")!;
  return Array.from({ length: ids.shape[0] }, (_, b) => ({ ids: ids.select(0, b), labels: labels.select(0, b) }));
};

/** The inputs of the given linear layers during one forward of ids, reduced by rows(x). */
function captureInputs(model: CausalLM, ids: Tensor, layers: string[], rows: (x: Tensor) => Tensor): Map<string, Tensor> {
  const got = new Map<string, Tensor>();
  const linears = model.linears();
  for (const name of layers) linears.get(name)!.probe = (x) => got.set(name, torch.keep(rows(x)));
  try {
    torch.noGrad(() => torch.dispose(model.forward(ids)));
  } finally {
    for (const name of layers) linears.get(name)!.probe = null;
  }
  return got;
}

const weightOf = (model: CausalLM, p: string) => model.linears().get(p)!.weight;

if (!manifest) test("PEFT init parity", { skip: ABSENT }, () => {});
else {
  const model = freshModel();
  const paths = targetPaths(model);
  const rank = manifest.rank,
    scaling = manifest.alpha / manifest.rank;
  const rs = { rank, scaling };
  const W = (p: string) => weightOf(model, p);
  const statistics = () => load("statistics.safetensors");

  for (const [method, init] of [
    ["true", "random"],
    ["gaussian", "gaussian"],
  ] as const) {
    parity(method, `A has PEFT's distribution (${init === "random" ? "U(±1/√in)" : "N(0, 1/r)"}), B = 0`, (ref, t) => {
      const mine = freshModel();
      torch.manualSeed(0);
      const loras = addLora(mine, { rank, alpha: manifest.alpha, targets: manifest.targets }, init);
      const pooled = (get: (p: string) => Tensor) => values(torch.cat(paths.map((p) => get(p).reshape(-1))));
      const ours = pooled((p) => loras.get(p)!.A),
        theirs = pooled((p) => ref.get(`${p}.lora_A`)!);
      const std = (xs: number[]) => Math.sqrt(xs.reduce((s, x) => s + x * x, 0) / xs.length);
      const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
      // Every target here reads 64 inputs: U(±1/8) has std 1/(8√3); N(0, 1/r) has std 1/8 too.
      const bound = 1 / Math.sqrt(64);
      const expected = init === "random" ? bound / Math.sqrt(3) : 1 / rank;
      t.diagnostic(`std svdlora ${std(ours)}, PEFT ${std(theirs)}, expected ${expected}`);
      for (const [who, xs] of [
        ["svdlora", ours],
        ["PEFT", theirs],
      ] as const) {
        assert.ok(Math.abs(std(xs) / expected - 1) < 0.06, `${who}: std ${std(xs)}, expected ${expected}`);
        assert.ok(Math.abs(mean(xs)) < 0.1 * expected, `${who}: mean ${mean(xs)}`);
        if (init === "random") assert.ok(Math.max(...xs.map(Math.abs)) <= bound, `${who}: |A| ≤ 1/√in`);
      }
      for (const l of loras.values()) assert.ok(values(l.B).every((v) => v === 0));
    });
  }

  parity("pissa", "A, B and the residual base weight", (ref, t) => compareModules(t, ref, paths, (p) => pissa(W(p), rs)));
  parity("pissa_niter_4", "with PEFT's torch.svd_lowrank test matrices replayed", (ref, t) =>
    compareModules(t, ref, paths, (p) => pissaNiter(W(p), { ...rs, niter: 4, random: replay([ref.get(`${p}.omega`)!]) })),
  );
  parity("olora", "A, B and the residual base weight", (ref, t) => compareModules(t, ref, paths, (p) => olora(W(p), rs)));
  parity("orthogonal", "with PEFT's Gaussian draws replayed; B·A = 0", (ref, t) =>
    compareModules(t, ref, paths, (p) => orthogonal(W(p), { rank, random: replay([0, 1, 2].map((i) => ref.get(`${p}.draw${i}`)!)) })),
  );
  parity("mica", "B (frozen) and A = 0", (ref, t) =>
    compareModules(t, ref, paths, (p) => {
      const f = mica(W(p), { rank });
      const sign = f.B.mul(ref.get(`${p}.lora_B`)!)
        .sum(0)
        .ge(0)
        .to("float32")
        .mul(2)
        .sub(1);
      return { A: f.A, B: f.B.mul(sign) };
    }),
  );
  parity("loftq", "A, B and the NF4-dequantized base weight (loftq_iter 1)", (ref, t) =>
    compareModules(t, ref, paths, (p) => loftq(W(p), { rank, iterations: 1 })),
  );
  parity("milora", "A, B as the authors' svd_init.py (mode min)", (ref, t) => compareModules(t, ref, paths, (p) => milora(W(p), rs)));
  parity("lora_one", "A, B as the authors' run_exp.py, from PEFT's averaged gradient", (ref, t) => {
    const s = statistics();
    compareModules(t, ref, paths, (p) => loraOne(s.get(`${p}.gradient`)!, { rank }));
  });

  for (const mode of ["ipm", "kpm"] as const) {
    parity(`corda_${mode}`, "from PEFT's covariance; svdlora's covariance from its own forward", (ref, t) => {
      const s = statistics();
      // KPM keeps the r smallest singular directions of W·C and multiplies them by C⁻¹: the float32
      // rounding of two LAPACKs (OpenBLAS here, MKL where PEFT ran) shows at 1.1e-5 in one module's A.
      compareModules(t, ref, paths, (p) => corda(W(p), s.get(`${p}.covariance`)!, { ...rs, mode }), { tol: mode === "kpm" ? 2e-5 : TOL });
      // The same statistic from svdlora's forward of the calibration sequences, one sequence at a time.
      const cov = new InputCovariance();
      const capture = freshModel();
      for (const { ids } of calibration())
        for (let i = 0; i < ids.shape[0]; i++)
          for (const [p, x] of captureInputs(capture, ids.narrow(0, i, 1), paths, (x) => x.clone())) cov.add(p, x);
      let worstStat = 0,
        worstInit = 0;
      for (const p of paths) {
        const C = cov.takeMean(p);
        worstStat = Math.max(worstStat, relative(C, s.get(`${p}.covariance`)!));
        const f = corda(W(p), C, { ...rs, mode });
        const a = align(f, { A: ref.get(`${p}.lora_A`)!, B: ref.get(`${p}.lora_B`)! });
        worstInit = Math.max(worstInit, maxDiff(a.A, ref.get(`${p}.lora_A`)!), maxDiff(a.B, ref.get(`${p}.lora_B`)!));
      }
      t.diagnostic(`covariance relative error ${worstStat.toExponential(2)}; factors from it max |Δ| ${worstInit.toExponential(2)}`);
      assert.ok(worstStat <= 1e-4, `svdlora's covariance differs from PEFT's by ${worstStat} (relative)`);
      assert.ok(worstInit <= 1e-4, `CorDA from svdlora's covariance differs from PEFT's by ${worstInit}`);
    });
  }

  parity("lora_ga", "from PEFT's gradient with its test matrices replayed; svdlora's gradient from its own backward", (ref, t) => {
    const s = statistics();
    compareModules(t, ref, paths, (p) => loraGa(W(p), s.get(`${p}.gradient`)!, { ...rs, random: replay([ref.get(`${p}.omega`)!]) }), {
      jointly: false,
      residual: (p, f) => W(p).sub(f.B.matmul(f.A).mul(scaling)),
    });
    // The gradient of each batch's mean token loss from svdlora's backward, averaged over the batches.
    const mine = freshModel();
    const G = new GradientMean();
    for (const p of paths) weightOf(mine, p).requiresGrad_(true);
    for (const { ids, labels } of calibration()) {
      const loss = mine.loss(ids, labels);
      loss.backward();
      for (const p of paths) {
        G.addGradient(p, weightOf(mine, p).grad!);
        weightOf(mine, p).grad = null;
      }
    }
    const worst = Math.max(...paths.map((p) => relative(G.takeMean(p), s.get(`${p}.gradient`)!)));
    t.diagnostic(`gradient relative error ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-4, `svdlora's averaged gradient differs from PEFT's by ${worst} (relative)`);
  });

  parity("eva", "ranks, alphas and A from PEFT's layer inputs with its test matrices replayed; svdlora's inputs", (ref, t) => {
    const entry = manifest.methods.eva;
    const s = statistics();
    const batches = calibration();
    const fitted = paths.filter((p) => !p.endsWith("v_proj"));
    const random = (): RandomSource => ({
      normal(rows, cols, o = {}) {
        const d = ref.get(`omega.${rows}x${cols}.${o.dtype ?? "float32"}`);
        if (!d) throw new Error(`EVA: PEFT drew no ${rows}×${cols} ${o.dtype} test matrix`);
        return d.to({ device: o.device ?? "cpu" });
      },
      permutation() {
        throw new Error("EVA draws no permutation");
      },
    });
    // Which layers share inputs, from svdlora's own forward of the first batch.
    const capture = freshModel();
    const keep = (labels: Tensor) => labels.ne(-100);
    const first = captureInputs(capture, batches[0].ids, paths, (x) => maskedRows(x, keep(batches[0].labels)));
    const shared = sharedInputs(first);
    assert.deepEqual([...shared.keys()].sort(), paths.filter((p) => p.endsWith("v_proj")).sort(), "v_proj reads q_proj's input");
    const run = (inputs: (b: number, layers: string[]) => Map<string, Tensor>) => {
      const eva = new EvaState(paths, shared, { rank: () => rank, alpha: manifest.alpha, random });
      let fed = 0;
      for (let want = eva.next(); want; want = eva.next()) eva.feed(inputs(fed++ % batches.length, want));
      return { result: eva.result(), fed };
    };
    const theirs = run((b, layers) => new Map(layers.map((p) => [p, s.get(`${p}.inputs${b}`)!])));
    const ours = run((b, layers) => captureInputs(capture, batches[b].ids, layers, (x) => maskedRows(x, keep(batches[b].labels))));
    t.diagnostic(`batches fed: from PEFT's inputs ${theirs.fed}, from svdlora's ${ours.fed}`);
    for (const [which, { result }] of [
      ["PEFT's inputs", theirs],
      ["svdlora's inputs", ours],
    ] as const) {
      let worst = 0;
      for (const p of paths) {
        const { A, rank: got, alpha } = result.get(p)!;
        assert.equal(got, entry.ranks?.[p] ?? 0, `${which}: ${p} rank`);
        if (got === 0) continue; // no adapter, as in PEFT
        assert.equal(alpha, entry.alpha_pattern?.[p] ?? manifest.alpha, `${which}: ${p} alpha`);
        worst = Math.max(worst, close(t, `${which}: ${p} lora_A`, A, ref.get(`${p}.lora_A`)!, which === "PEFT's inputs" ? TOL : 1e-4));
      }
      t.diagnostic(`${which}: lora_A max |Δ| ${worst.toExponential(2)}`);
    }
    const inputs = Math.max(
      ...fitted.flatMap((p) =>
        batches.map((b, i) =>
          relative(captureInputs(capture, b.ids, [p], (x) => maskedRows(x, keep(b.labels))).get(p)!, s.get(`${p}.inputs${i}`)!),
        ),
      ),
    );
    t.diagnostic(`layer inputs relative error ${inputs.toExponential(2)}`);
    assert.ok(inputs <= 1e-5, `svdlora's layer inputs differ from PEFT's by ${inputs} (relative)`);
  });
}
