// A real fine-tune's ΔW against the synthesized teacher's: the singular-value spectra of a few
// modules side by side (small multiples, log scale), each normalized by its largest value so the
// shapes compare, with the energy each keeps at the LoRA rank r written in the panel.
import type { TopLevelSpec } from "vega-lite";
import { PANEL_WIDTH, ROLE_COLORS, chartConfig, chartTitle } from "./chart-theme.js";
import { isPlottable } from "./smoothing.js";
import { LOG_AXIS, spreadIndices } from "./synthesis-chart.js";

export interface SpectraModule {
  name: string;
  /** Singular values of the real ΔW = W_finetuned − W_base (the complete spectrum), descending. */
  real: number[];
  /** Singular values of the synthesized teacher ΔW (rank K), descending. */
  synthesized: number[];
}

export interface SpectraChartInput {
  modules: SpectraModule[];
  /** The LoRA rank r, marked in every panel. */
  rank: number;
  title?: string;
  /** How many modules get a panel (default 6, spread evenly over the list). */
  panels?: number;
  /** Divide each spectrum by its largest value (default true); false plots σᵢ as they are. */
  normalize?: boolean;
}

export const SPECTRA_SERIES = { real: "real fine-tune ΔW", synth: "synthesized teacher ΔW" } as const;
const COLUMNS = 3;

/** Σ_{i≤r} σᵢ² / Σ σᵢ² (NaN for an empty or all-zero spectrum). */
export function energyAtRank(spectrum: readonly number[], rank: number): number {
  let head = 0,
    total = 0;
  spectrum.forEach((s, i) => {
    if (!isPlottable(s)) return;
    total += s * s;
    if (i < rank) head += s * s;
  });
  return total > 0 ? head / total : NaN;
}

const fmt = (x: number, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");

export function spectraChart(input: SpectraChartInput): TopLevelSpec {
  const normalize = input.normalize ?? true;
  const shown = spreadIndices(input.modules.length, input.panels ?? 6).map((i) => input.modules[i]);
  const points = shown.flatMap((m) => [
    ...spectrumPoints(m.name, m.real, SPECTRA_SERIES.real, normalize),
    ...spectrumPoints(m.name, m.synthesized, SPECTRA_SERIES.synth, normalize),
  ]);
  const labels = shown.map((m) => ({
    module: m.name,
    label: `energy at r: real ${fmt(energyAtRank(m.real, input.rank))} · synth ${fmt(energyAtRank(m.synthesized, input.rank))}`,
  }));
  const meanEnergy = (pick: (m: SpectraModule) => number[]) => {
    const e = input.modules.map((m) => energyAtRank(pick(m), input.rank)).filter(Number.isFinite);
    return e.length ? e.reduce((a, b) => a + b, 0) / e.length : NaN;
  };
  const subtitle = [
    `${input.modules.length} matrices (${shown.length} shown) · LoRA rank r = ${input.rank} · mean energy at r: real ${fmt(meanEnergy((m) => m.real))}, synthesized ${fmt(meanEnergy((m) => m.synthesized))}`,
    `${normalize ? "each spectrum divided by its own largest singular value σ₁, so shapes compare" : "singular values as they are"}; log scale; dotted line: r`,
  ];
  const panelWidth = Math.floor((PANEL_WIDTH - (COLUMNS - 1) * 20) / COLUMNS);
  const only = (series: string) => ({ filter: { field: "series", equal: series } });
  const encoding = {
    x: { field: "index", type: "quantitative", title: "singular value index i", axis: { tickMinStep: 1, format: "d" } },
    y: { field: "sigma", type: "quantitative", title: normalize ? "σᵢ / σ₁" : "σᵢ", scale: { type: "log" }, axis: LOG_AXIS },
    color: {
      field: "series",
      type: "nominal",
      title: null,
      scale: { domain: [SPECTRA_SERIES.real, SPECTRA_SERIES.synth], range: [ROLE_COLORS.smoothedTrain, ROLE_COLORS.eval] },
      legend: { orient: "top", direction: "horizontal" },
    },
  } as const;

  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: chartTitle(input.title ?? "Real fine-tune ΔW vs synthesized teacher: singular-value spectra", subtitle),
    config: chartConfig,
    data: { values: [...points, ...labels.map((l) => ({ ...l, series: "label" }))] },
    facet: { field: "module", type: "nominal", title: null, sort: shown.map((m) => m.name) },
    columns: COLUMNS,
    resolve: { scale: { x: "independent" } }, // a 64-value spectrum beside a 256-value one
    spec: {
      width: panelWidth,
      height: 200,
      layer: [
        { transform: [only(SPECTRA_SERIES.synth)], mark: { type: "line", strokeWidth: 1.5, strokeDash: [5, 3] }, encoding },
        { transform: [only(SPECTRA_SERIES.real)], mark: { type: "line", strokeWidth: 2 }, encoding },
        {
          transform: [only("label")],
          mark: { type: "text", align: "right", baseline: "top", x: "width", dx: -4, y: 4, fontSize: 11, color: "#333333" },
          encoding: { text: { field: "label" } },
        },
        {
          transform: [only("label")],
          mark: { type: "rule", color: ROLE_COLORS.reference, strokeWidth: 1.5, strokeDash: [2, 3] },
          encoding: { x: { datum: input.rank, type: "quantitative" } },
        },
      ],
    },
  } as TopLevelSpec;
}

/** (index, σ) points for a log axis: 1-based index, non-positive and non-finite values dropped. */
function spectrumPoints(module: string, spectrum: readonly number[], series: string, normalize: boolean) {
  const top = spectrum[0];
  if (normalize && !(isPlottable(top) && top > 0)) return [];
  return spectrum
    .map((s, i) => ({ module, series, index: i + 1, sigma: normalize ? s / top : s }))
    .filter((p) => isPlottable(p.sigma) && p.sigma > 0);
}
