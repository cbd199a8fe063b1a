// The synthesized-teacher file (step 2a's synthesized_delta_rank<K>.safetensors; docs/formats.md):
// one weight delta per module, stored factored as ΔW = U diag(S) Vh.
//
// Tensors: "<module path>.U" [out × K], "<module path>.S" [K], "<module path>.Vh" [K × in].
// Metadata: "format": "pt" and "svdlora": JSON {kind, version, settings, modules: {path: info}},
// where settings and each info are JSON objects recorded as given; every info has at least the
// module's shape [out, in] and its rank K, which the tensors are checked against on reading.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { SafetensorsFile, saveSafetensors } from "./safetensors.js";

export const SYNTHESIZED_DELTA_KIND = "svdlora.synthesized_delta";
const FACTOR_NAMES = ["U", "S", "Vh"] as const;

/** ΔW = U diag(S) Vh of one module. */
export interface FactoredDelta {
  U: Tensor;
  S: Tensor;
  Vh: Tensor;
}

/** What the file lists for each module: its [out, in] and K, plus any other recorded fields. */
export interface DeltaModuleInfo {
  shape: [number, number];
  rank: number;
}

/** The file's contents: settings and per-module info as written, and the factors per module path. */
export interface SynthesizedDeltaFile {
  settings: Record<string, unknown>;
  modules: Map<string, FactoredDelta>;
  info: Map<string, DeltaModuleInfo>;
}

export function saveSynthesizedDelta(
  file: string,
  delta: { settings: object; modules: ReadonlyMap<string, FactoredDelta>; info: ReadonlyMap<string, DeltaModuleInfo> },
): void {
  const tensors = new Map<string, Tensor>();
  for (const [modulePath, factors] of delta.modules) for (const name of FACTOR_NAMES) tensors.set(`${modulePath}.${name}`, factors[name]);
  const header = { kind: SYNTHESIZED_DELTA_KIND, version: 1, settings: delta.settings, modules: Object.fromEntries(delta.info) };
  saveSafetensors(file, tensors, { format: "pt", svdlora: JSON.stringify(header) });
}

/**
 * Reads a synthesized-delta file, checking that every listed module has its three tensors with the
 * listed shape and rank and that nothing else is stored. Settings and infos come back as written.
 */
export function loadSynthesizedDelta(file: string): SynthesizedDeltaFile {
  const st = SafetensorsFile.open(file);
  const modules = new Map<string, FactoredDelta>();
  const infos = new Map<string, DeltaModuleInfo>();
  let settings: Record<string, unknown>;
  try {
    const fail = (problem: string): never => {
      throw new Error(`${file}: ${problem}`);
    };
    let header: { kind?: string; settings?: Record<string, unknown>; modules?: Record<string, DeltaModuleInfo> } = {};
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
      const [m, n] = Array.isArray(info?.shape) ? info.shape : [];
      const K = info?.rank;
      if (![m, n, K].every((d) => Number.isSafeInteger(d) && (d as number) > 0))
        fail(`module ${modulePath}: its metadata needs "shape": [out, in] and "rank": K as positive integers`);
      const keys = FACTOR_NAMES.map((name) => `${modulePath}.${name}`);
      for (const key of keys) {
        if (!st.has(key)) fail(`module ${modulePath} has no tensor ${key}`);
        expected.add(key);
      }
      const [U, S, Vh] = keys.map((key) => st.readWeight(key));
      modules.set(modulePath, { U, S, Vh });
      if (`${U.shape}` !== `${m},${K}` || `${S.shape}` !== `${K}` || `${Vh.shape}` !== `${K},${n}`) {
        fail(`module ${modulePath}: U [${U.shape}], S [${S.shape}], Vh [${Vh.shape}] do not match shape [${m}, ${n}] at rank ${K}`);
      }
      infos.set(modulePath, info);
    }
    const extra = st.keys().find((k) => !expected.has(k));
    if (extra) fail(`unexpected tensor ${JSON.stringify(extra)} (not listed in the svdlora metadata)`);
  } catch (error) {
    torch.dispose([...modules.values()]);
    throw error;
  } finally {
    st.close();
  }
  return { settings, modules, info: infos };
}
