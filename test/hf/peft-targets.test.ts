// Which modules an adapter config adapts, with what rank and scale: as PEFT does (hand-worked
// expectations here; PEFT's own answers in a golden file made by scripts/golden/peft_targets.py).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { describe, it } from "node:test";
import {
  type LoraAdapterConfig,
  type LoraWeights,
  decoderModuleNames,
  loraScaling,
  parseAdapterConfig,
  rankFor,
  targetedModules,
} from "../../src/hf/peft.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { loadLora } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";

const casesFile = new URL("../../../test/fixtures/peft-targets/cases.json", import.meta.url);
const goldenFile = new URL("../../../test/fixtures/golden/peft-targets.json", import.meta.url);
const tinyModel = new URL("../../../test/fixtures/golden/qwen2-tiny", import.meta.url).pathname;

interface Case {
  name: string;
  svdlora: "same" | "refused";
  config: Record<string, unknown>;
}
const cases: Case[] = JSON.parse(fs.readFileSync(casesFile, "utf8"));

type Outcome = { error: string } | { modules: Record<string, { r: number; scaling: number }> };

/** What svdlora makes of a config on a 4-layer model: the adapted modules with rank and scale, or its one-line refusal. */
function svdlora(config: Record<string, unknown>, layers = 4): Outcome {
  try {
    const c = parseAdapterConfig({ peft_type: "LORA", ...config });
    const modules = targetedModules(c, layers);
    return { modules: Object.fromEntries(modules.map((m) => [m, { r: rankFor(c, m), scaling: loraScaling(c, m) }])) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

const attn = (layer: number, p: string) => `model.layers.${layer}.self_attn.${p}`;
const mlp = (layer: number, p: string) => `model.layers.${layer}.mlp.${p}`;
const all = (f: (l: number, p: string) => string, ps: string[], layers = [0, 1, 2, 3]) => layers.flatMap((l) => ps.map((p) => f(l, p)));
const allLinear = [0, 1, 2, 3].flatMap((l) => [
  ...["q_proj", "k_proj", "v_proj", "o_proj"].map((p) => attn(l, p)),
  ...["gate_proj", "up_proj", "down_proj"].map((p) => mlp(l, p)),
]);

/** The modules each case adapts, worked out by hand from PEFT's matching rules; "refused" where svdlora refuses. */
const expected: Record<string, string[] | "refused"> = {
  "names q_proj, v_proj": all(attn, ["q_proj", "v_proj"]),
  "no target_modules: the model type's defaults": all(attn, ["q_proj", "v_proj"]),
  "a whole module path and a name": [attn(1, "q_proj"), ...all(attn, ["v_proj"])],
  "last two components": [...all(attn, ["o_proj"]), ...all(mlp, ["up_proj"])],
  "regex over the full path": all(attn, ["q_proj", "v_proj"]),
  "regex naming layers": all(mlp, ["gate_proj", "up_proj", "down_proj"], [0, 2]),
  "regex with a negative lookahead": all(attn, ["k_proj", "o_proj"], [0, 1, 2]),
  "all-linear": allLinear,
  "ALL-LINEAR (case-insensitive)": allLinear,
  "layers_to_transform list": all(attn, ["q_proj", "o_proj"], [0, 2]),
  "layers_to_transform int": [mlp(3, "down_proj")],
  "layers_to_transform with a suffix of two components": all(attn, ["q_proj"], [1, 3]),
  "layers_pattern string": [attn(1, "v_proj")],
  "layers_pattern list": [attn(2, "v_proj")],
  "layers_pattern that matches nothing": "refused",
  "exclude_modules list": [...all(attn, ["q_proj"], [1, 2, 3]), ...all(attn, ["v_proj"], [0, 2, 3])],
  "exclude_modules regex": allLinear.filter((m) => !m.startsWith("model.layers.1.")),
  "exclude_modules excluding everything": "refused",
  "rank_pattern and alpha_pattern": all(attn, ["q_proj", "v_proj"]),
  "rank_pattern: the first matching key wins": all(attn, ["q_proj"]),
  "rsLoRA with a rank pattern": [...all(attn, ["q_proj"]), ...all(mlp, ["down_proj"])],
  "a container module (mlp)": "refused",
  "regex matching every module": "refused",
  "regex string with layers_to_transform": "refused",
  "layers_pattern without layers_to_transform": "refused",
  lm_head: "refused",
  embed_tokens: "refused",
  "a whole module path with layers_to_transform": "refused",
};

describe("PEFT's module selection", () => {
  it("every case adapts the modules worked out by hand, or is refused in one line", () => {
    assert.deepEqual(cases.map((c) => c.name).sort(), Object.keys(expected).sort(), "one expectation per case");
    for (const c of cases) {
      const got = svdlora(c.config);
      const want = expected[c.name];
      if (want === "refused") {
        assert.ok("error" in got, `${c.name}: refused`);
        assert.ok(!got.error.includes("\n"), `${c.name}: one line`);
      } else {
        assert.ok("modules" in got, `${c.name}: ${"error" in got ? got.error : ""}`);
        assert.deepEqual(Object.keys(got.modules).sort(), [...want].sort(), c.name);
      }
    }
  });

  it("ranks and scales per module: rank_pattern / alpha_pattern first match, rsLoRA", () => {
    const outcome = (name: string) => {
      const got = svdlora(cases.find((c) => c.name === name)!.config);
      assert.ok("modules" in got);
      return got.modules;
    };
    const patterns = outcome("rank_pattern and alpha_pattern");
    assert.deepEqual(patterns[attn(0, "q_proj")], { r: 2, scaling: 16 / 2 });
    assert.deepEqual(patterns[attn(1, "v_proj")], { r: 8, scaling: 32 / 8 });
    assert.deepEqual(patterns[attn(2, "v_proj")], { r: 4, scaling: 32 / 4 });
    const first = outcome("rank_pattern: the first matching key wins");
    assert.equal(first[attn(1, "q_proj")].r, 2);
    assert.equal(first[attn(3, "q_proj")].r, 6);
    const rs = outcome("rsLoRA with a rank pattern");
    assert.equal(rs[attn(0, "q_proj")].scaling, 8 / 2);
    assert.equal(rs[mlp(2, "down_proj")].scaling, 8 / 4);
  });

  it("refusals say what is wrong", () => {
    const error = (name: string) => {
      const got = svdlora(cases.find((c) => c.name === name)!.config);
      assert.ok("error" in got, name);
      return got.error;
    };
    assert.match(error("lm_head"), /target_modules \["lm_head","q_proj"\] matches lm_head: svdlora adapts only the decoder's projections/);
    assert.match(error("a container module (mlp)"), /matches model\.layers\.0\.mlp: it is not a linear layer \(PEFT refuses it too\)/);
    assert.match(error("exclude_modules excluding everything"), /matches no module of this 4-layer model/);
    assert.match(
      error("regex string with layers_to_transform"),
      /layers_to_transform cannot be used when target_modules is a regex string/,
    );
    assert.match(error("a whole module path with layers_to_transform"), /layers_to_transform with whole module paths in target_modules/);
  });

  it("matches PEFT's own choices (golden file from scripts/golden/peft_targets.py)", (t) => {
    if (!fs.existsSync(goldenFile))
      return t.skip("test/fixtures/golden/peft-targets.json is absent: make it with python3 scripts/golden/peft_targets.py");
    const golden = JSON.parse(fs.readFileSync(goldenFile, "utf8"));
    for (const kind of ["qwen2", "llama"]) assert.deepEqual([...decoderModuleNames(4)].sort(), [...golden.module_names[kind]].sort(), kind);
    for (const c of cases) {
      const peft = golden.cases.find((g: { name: string }) => g.name === c.name) as Outcome;
      const got = svdlora(c.config);
      if (c.svdlora === "refused" || "error" in peft) {
        assert.ok("error" in got, `${c.name}: svdlora refuses (PEFT: ${"error" in peft ? peft.error : "accepts"})`);
        continue;
      }
      assert.ok("modules" in got, `${c.name}: ${"error" in got ? got.error : ""}`);
      assert.deepEqual(Object.keys(got.modules).sort(), Object.keys(peft.modules).sort(), c.name);
      for (const [m, { r, scaling }] of Object.entries(peft.modules)) {
        assert.equal(got.modules[m].r, r, `${c.name} ${m} rank`);
        assert.ok(Math.abs(got.modules[m].scaling - scaling) < 1e-12, `${c.name} ${m} scaling ${got.modules[m].scaling} vs ${scaling}`);
      }
    }
  });
});

describe("loadLora applies an adapter on exactly the modules its config selects", () => {
  const model = loadCausalLM(tinyModel); // 2 layers, hidden 64, kv 32 (GQA)
  const config = (extra: Record<string, unknown>): LoraAdapterConfig =>
    parseAdapterConfig({ peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["q_proj", "v_proj"], ...extra });
  const factors = (modules: string[], r = 2): LoraWeights =>
    new Map(
      modules.map((m) => {
        const linear = model.linears().get(m)!;
        return [m, { A: torch.keep(torch.randn([r, linear.inFeatures])), B: torch.keep(torch.randn([linear.outFeatures, r])) }];
      }),
    );
  const detach = () => {
    for (const linear of model.linears().values()) linear.lora = null;
  };

  it("only the layers in layers_to_transform, with rank_pattern and rsLoRA scales", () => {
    const c = config({ layers_to_transform: [1], rank_pattern: { v_proj: 4 }, use_rslora: true });
    const loras = loadLora(model, c, new Map([...factors([attn(1, "q_proj")]), ...factors([attn(1, "v_proj")], 4)]), false);
    assert.deepEqual([...loras.keys()].sort(), [attn(1, "q_proj"), attn(1, "v_proj")]);
    assert.equal(loras.get(attn(1, "q_proj"))!.scaling, 4 / Math.sqrt(2));
    assert.equal(loras.get(attn(1, "v_proj"))!.scaling, 4 / 2);
    assert.equal(model.linears().get(attn(0, "q_proj"))!.lora, null);
    detach();
  });

  it("refuses factors for a module the config does not select, and a selected module without factors", () => {
    assert.throws(
      () => loadLora(model, config({ layers_to_transform: [1] }), factors(all(attn, ["q_proj", "v_proj"], [0, 1])), false),
      /adapter has factors for model\.layers\.0\.self_attn\.q_proj, which its config does not target \(PEFT would ignore them\)/,
    );
    assert.throws(
      () => loadLora(model, config({}), factors(all(attn, ["q_proj"], [0, 1])), false),
      /adapter config targets model\.layers\.0\.self_attn\.v_proj \(and 1 more\), but the adapter has no factors for it/,
    );
    assert.throws(
      () =>
        loadLora(
          model,
          config({ target_modules: "all-linear", exclude_modules: "model\\.layers\\.1\\..*" }),
          factors(all(attn, ["q_proj"], [0])),
          false,
        ),
      /targets model\.layers\.0\.self_attn\.k_proj \(and 5 more\)/,
    );
    detach();
  });
});
