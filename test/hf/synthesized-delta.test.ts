// The synthesized-teacher file: the documented layout (docs/formats.md), a lossless round trip,
// and one clear line for files that are not one.
import assert from "node:assert/strict";
import * as path from "node:path";
import { describe, it } from "node:test";
import { SafetensorsFile, saveSafetensors } from "../../src/hf/safetensors.js";
import { SYNTHESIZED_DELTA_KIND, loadSynthesizedDelta, saveSynthesizedDelta } from "../../src/hf/synthesized-delta.js";
import { disposeDelta, synthesizeTeacher } from "../../src/lowrank/synthesis.js";
import * as torch from "../../src/torch/index.js";
import { tempDir, tinyLoras } from "../lowrank/helpers.js";

const root = tempDir("synthesized-delta");

function teacher() {
  const loras = tinyLoras();
  const delta = synthesizeTeacher(loras, { targetRank: 10, noiseScale: 0.2, seed: 3 }, { sourceAdapter: "final_model_random" });
  torch.dispose([...loras.values()]);
  return delta;
}

describe("synthesized delta file", () => {
  it("stores U, S, Vh per module with the settings and module infos in its metadata, and reads them back unchanged", () => {
    const delta = teacher();
    const file = path.join(root, "synthesized_delta_rank10.safetensors");
    saveSynthesizedDelta(file, delta);

    const st = SafetensorsFile.open(file);
    assert.deepEqual(st.entry("model.layers.0.mlp.down_proj.U").shape, [16, 10]);
    assert.deepEqual(st.entry("model.layers.0.mlp.down_proj.S").shape, [10]);
    assert.deepEqual(st.entry("model.layers.0.mlp.down_proj.Vh").shape, [10, 40]);
    assert.deepEqual(st.entry("model.layers.0.self_attn.v_proj.U").shape, [8, 8], "K clamped to min(out, in)");
    assert.equal(st.keys().length, 12);
    assert.equal(st.metadata!.format, "pt");
    const meta = JSON.parse(st.metadata!.svdlora);
    st.close();
    assert.deepEqual(Object.keys(meta), ["kind", "version", "settings", "modules"]);
    assert.equal(meta.kind, SYNTHESIZED_DELTA_KIND);
    assert.equal(meta.version, 1);
    assert.deepEqual(meta.settings, JSON.parse(JSON.stringify(delta.settings)));
    assert.deepEqual(
      meta.modules["model.layers.0.mlp.down_proj"],
      JSON.parse(JSON.stringify(delta.info.get("model.layers.0.mlp.down_proj"))),
    );

    const loaded = loadSynthesizedDelta(file);
    assert.deepEqual(loaded.settings, delta.settings);
    assert.deepEqual([...loaded.info], [...delta.info]);
    assert.deepEqual([...loaded.modules.keys()], [...delta.modules.keys()]);
    for (const [p, d] of delta.modules)
      for (const name of ["U", "S", "Vh"] as const) assert.deepEqual(loaded.modules.get(p)![name].bytes(), d[name].bytes(), `${p}.${name}`);
    disposeDelta(delta);
    disposeDelta(loaded);
  });

  it("rejects files that are not synthesized deltas with one line naming the file and the problem, leaking nothing", () => {
    const t = torch.zeros([2, 2]);
    const s = torch.zeros([2]);
    const write = (name: string, tensors: Record<string, torch.Tensor>, metadata?: Record<string, string>) => {
      const file = path.join(root, name);
      saveSafetensors(file, tensors, metadata);
      return file;
    };
    const header = (modules: Record<string, unknown>) => ({
      svdlora: JSON.stringify({ kind: SYNTHESIZED_DELTA_KIND, version: 1, settings: {}, modules }),
    });
    const x = { shape: [2, 2], rank: 2 };
    const cases: [string, RegExp][] = [
      [write("plain.safetensors", { "x.U": t }), /not a synthesized delta .*make one with svdlora synthesize-teacher$/],
      [write("not-json.safetensors", { "x.U": t }, { svdlora: "{" }), /the "svdlora" metadata is not valid JSON$/],
      [write("missing.safetensors", { "x.U": t }, header({ x })), /module x has no tensor x\.S$/],
      [
        write("shape.safetensors", { "x.U": t, "x.S": s, "x.Vh": torch.zeros([2, 3]) }, header({ x })),
        /module x: U \[2,2\], S \[2\], Vh \[2,3\] do not match shape \[2, 2\] at rank 2$/,
      ],
      [
        write("extra.safetensors", { "x.U": t, "x.S": s, "x.Vh": t, "y.U": t }, header({ x })),
        /unexpected tensor "y\.U" \(not listed in the svdlora metadata\)$/,
      ],
      [
        write("no-rank.safetensors", { "x.U": t, "x.S": s, "x.Vh": t }, header({ x: { shape: [2, 2] } })),
        /module x: its metadata needs "shape": \[out, in\] and "rank": K/,
      ],
    ];
    const before = torch.memory().count;
    for (const [file, pattern] of cases) {
      assert.throws(
        () => loadSynthesizedDelta(file),
        (e: Error) => e.message.startsWith(`${file}: `) && pattern.test(e.message) && !e.message.includes("\n"),
        file,
      );
    }
    assert.equal(torch.memory().count, before, "tensors read before the failure are freed");
    torch.dispose([t, s]);
  });
});
