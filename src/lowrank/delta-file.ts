// The synthesized-delta file (step 2a's synthesized_delta_rank<K>.safetensors).
import { SafetensorsFile, saveSafetensors } from "../hf/safetensors.js";
import type { Tensor } from "../torch/index.js";
import type { Svd } from "./svd.js";
import { type SynthesisSettings, type SynthesizedDelta, type SynthesizedModuleInfo, disposeDelta } from "./synthesis.js";

// Tensors: "<module path>.U" [out × K], "<module path>.S" [K], "<module path>.Vh" [K × in], with
// ΔW = U diag(S) Vh. Metadata: "format": "pt" and "svdlora": JSON {kind, version, settings, modules:
// {path: SynthesizedModuleInfo}}.

export const SYNTHESIZED_DELTA_KIND = "svdlora.synthesized_delta";
const FACTOR_NAMES = ["U", "S", "Vh"] as const;

export function saveSynthesizedDelta(file: string, delta: SynthesizedDelta): void {
  const tensors = new Map<string, Tensor>();
  for (const [modulePath, factors] of delta.modules) for (const name of FACTOR_NAMES) tensors.set(`${modulePath}.${name}`, factors[name]);
  const header = { kind: SYNTHESIZED_DELTA_KIND, version: 1, settings: delta.settings, modules: Object.fromEntries(delta.info) };
  saveSafetensors(file, tensors, { format: "pt", svdlora: JSON.stringify(header) });
}

export function loadSynthesizedDelta(file: string): SynthesizedDelta {
  const st = SafetensorsFile.open(file);
  const modules = new Map<string, Svd>();
  const infos = new Map<string, SynthesizedModuleInfo>();
  let settings: SynthesisSettings;
  try {
    const fail = (problem: string): never => {
      throw new Error(`${file}: ${problem}`);
    };
    let header: { kind?: string; settings?: SynthesisSettings; modules?: Record<string, SynthesizedModuleInfo> } = {};
    try {
      header = JSON.parse(st.metadata?.svdlora ?? "{}");
    } catch {
      fail(`the "svdlora" metadata is not valid JSON`);
    }
    if (header.kind !== SYNTHESIZED_DELTA_KIND || !header.settings || !header.modules) {
      fail(`not a synthesized delta (no svdlora metadata of kind ${SYNTHESIZED_DELTA_KIND}); make one with svdlora synthesize-teacher`);
    }
    settings = header.settings!;
    const expected = new Set<string>();
    for (const [modulePath, info] of Object.entries(header.modules!)) {
      const keys = FACTOR_NAMES.map((name) => `${modulePath}.${name}`);
      for (const key of keys) {
        if (!st.has(key)) fail(`module ${modulePath} has no tensor ${key}`);
        expected.add(key);
      }
      const [U, S, Vh] = keys.map((key) => st.read(key));
      modules.set(modulePath, { U, S, Vh });
      const K = info.rank;
      const [m, n] = info.shape;
      if (`${U.shape}` !== `${m},${K}` || `${S.shape}` !== `${K}` || `${Vh.shape}` !== `${K},${n}`) {
        fail(`module ${modulePath}: U [${U.shape}], S [${S.shape}], Vh [${Vh.shape}] do not match shape [${m}, ${n}] at rank ${K}`);
      }
      infos.set(modulePath, info);
    }
    const extra = st.keys().find((k) => !expected.has(k));
    if (extra) fail(`unexpected tensor ${JSON.stringify(extra)} (not listed in the svdlora metadata)`);
  } catch (error) {
    disposeDelta({ modules });
    throw error;
  } finally {
    st.close();
  }
  return { settings, modules, info: infos };
}
