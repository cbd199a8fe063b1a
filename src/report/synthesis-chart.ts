// Teacher synthesis (step 2a): the LoRA ΔW spectrum against the synthesized rank-K spectrum for
// a few modules, and the noise ratio achieved in every module against the requested one.
import type { TopLevelSpec } from "vega-lite";
import { PANEL_WIDTH, ROLE_COLORS, chartConfig, chartTitle } from "./chart-theme.js";
import { isPlottable } from "./smoothing.js";

export interface SynthesisModule {
  name: string;
  /** Singular values of the LoRA ΔW (r of them), descending. */
  originalSpectrum: number[];
  /** Singular values of the synthesized teacher ΔW (K of them), descending. */
  synthSpectrum: number[];
  /** ‖ΔW_synth − ΔW_clean‖_F / ‖ΔW_clean‖_F as measured. */
  achievedNoise: number;
}

export interface SynthesisChartInput {
  modules: SynthesisModule[];
  /** The requested --noise-scale, drawn as a reference line. */
  noiseScale?: number;
  targetRank?: number;
  loraRank?: number;
  title?: string;
  /** How many modules get a spectrum panel (default 6, spread evenly over the list). */
  spectrumPanels?: number;
}

const SERIES = { original: "LoRA ΔW (rank r)", synth: "synthesized teacher ΔW (rank K)" };
const COLUMNS = 3;

/** Log-axis labels at powers of ten only (1e-3, 1e-2, …); the 2…9 ticks stay as grid lines. */
export const LOG_AXIS = {
  labelExpr: "abs(log(datum.value) / LN10 - round(log(datum.value) / LN10)) < 1e-6 ? format(datum.value, '.0e') : ''",
  labelOverlap: false,
} as const;

/** count indices spread evenly over 0..n−1 (first and last included), so early and late layers both show. */
export function spreadIndices(n: number, count: number): number[] {
  if (count >= n) return Array.from({ length: n }, (_, i) => i);
  if (count <= 1) return count === 1 ? [0] : [];
  return [...new Set(Array.from({ length: count }, (_, i) => Math.round((i * (n - 1)) / (count - 1))))];
}

export function synthesisChart(input: SynthesisChartInput): TopLevelSpec {
  const shown = spreadIndices(input.modules.length, input.spectrumPanels ?? 6).map((i) => input.modules[i]);
  const spectra = shown.flatMap((m) => [
    ...spectrumPoints(m.name, m.originalSpectrum, SERIES.original),
    ...spectrumPoints(m.name, m.synthSpectrum, SERIES.synth),
  ]);
  const noise = input.modules.map((m, index) => ({ module: m.name, index, noise: m.achievedNoise })).filter((d) => isPlottable(d.noise));
  const ranks = [
    input.loraRank !== undefined ? `r = ${input.loraRank}` : "",
    input.targetRank !== undefined ? `K = ${input.targetRank}` : "",
  ].filter(Boolean);
  const n = input.modules.length;
  const subtitle = [
    `${n} adapted matrices${ranks.length ? ` · ${ranks.join(", ")}` : ""}${input.noiseScale !== undefined ? ` · requested noise ${input.noiseScale}` : ""}`,
  ];
  // the panels say how many of the matrices they show
  const spectraTitle =
    shown.length < n
      ? `Singular values of ${shown.length} of the ${n} matrices, spread over the model (log scale)`
      : `Singular values of ${n === 1 ? "the matrix" : `all ${n} matrices`} (log scale)`;
  const panelWidth = Math.floor((PANEL_WIDTH - (COLUMNS - 1) * 20) / COLUMNS);
  const manyModules = input.modules.length > 40; // then names would not fit under the points
  const only = (series: string) => ({ filter: { field: "series", equal: series } });
  const spectrumEncoding = {
    x: { field: "index", type: "quantitative", title: "singular value index i", axis: { tickMinStep: 1, format: "d" } },
    y: { field: "sigma", type: "quantitative", title: "σᵢ", scale: { type: "log" }, axis: LOG_AXIS },
    color: {
      field: "series",
      type: "nominal",
      title: null,
      scale: { domain: [SERIES.original, SERIES.synth], range: [ROLE_COLORS.smoothedTrain, ROLE_COLORS.eval] },
      legend: { orient: "top", direction: "horizontal" },
    },
  } as const;

  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: chartTitle(input.title ?? "Teacher synthesis: singular-value spectra and achieved noise", subtitle),
    config: chartConfig,
    vconcat: [
      {
        title: { text: spectraTitle, fontSize: 14, anchor: "start" },
        data: { values: spectra },
        facet: { field: "module", type: "nominal", title: null, sort: shown.map((m) => m.name) },
        columns: COLUMNS,
        spec: {
          width: panelWidth,
          height: 200,
          // the synthesized spectrum first, so the original r values stay visible on top of it
          layer: [
            {
              transform: [only(SERIES.synth)],
              mark: { type: "line", strokeWidth: 1.5, strokeDash: [5, 3], point: { size: 14 } },
              encoding: spectrumEncoding,
            },
            {
              transform: [only(SERIES.original)],
              mark: { type: "line", strokeWidth: 2.5, point: { size: 40 } },
              encoding: spectrumEncoding,
            },
          ],
        },
      },
      {
        title: {
          text: `Achieved noise ratio of ${n === 1 ? "the matrix" : `all ${n} matrices`}`,
          subtitle: "‖ΔW_synth − ΔW_clean‖_F / ‖ΔW_clean‖_F",
          fontSize: 14,
          anchor: "start",
        },
        width: PANEL_WIDTH,
        height: 220,
        data: { values: noise },
        layer: [
          {
            mark: { type: "point", filled: true, size: 45, color: ROLE_COLORS.smoothedTrain },
            encoding: {
              x: manyModules
                ? { field: "index", type: "ordinal", title: "adapted matrix (in model order)", axis: { labels: false, ticks: false } }
                : {
                    field: "module",
                    type: "nominal",
                    sort: null,
                    title: null,
                    axis: { labelAngle: -40, labelLimit: 220, labelFontSize: 10 },
                  },
              // not from zero: what matters is the distance to the requested value, but at least
              // ±5 % of it is shown, so round-off (1e-16) does not fill the axis
              y: {
                field: "noise",
                type: "quantitative",
                title: "achieved noise ratio",
                scale: {
                  zero: false,
                  domain: noiseDomain(
                    noise.map((n) => n.noise),
                    input.noiseScale,
                  ),
                },
                axis: { format: ".4~f" },
              },
            },
          },
          ...(input.noiseScale === undefined
            ? []
            : [
                {
                  data: { values: [{ target: input.noiseScale, label: `requested ${input.noiseScale}` }] },
                  layer: [
                    {
                      mark: { type: "rule", color: ROLE_COLORS.eval, strokeWidth: 2, strokeDash: [6, 4] },
                      encoding: { y: { field: "target", type: "quantitative" } },
                    },
                    {
                      mark: { type: "text", align: "right", baseline: "bottom", dy: -3, x: "width", color: ROLE_COLORS.eval, fontSize: 12 },
                      encoding: { y: { field: "target", type: "quantitative" }, text: { field: "label" } },
                    },
                  ],
                } as const,
              ]),
        ],
      },
    ],
  } as TopLevelSpec;
}

/** (index, σ) points for a log axis: 1-based index, non-positive and non-finite values dropped. */
function spectrumPoints(module: string, spectrum: readonly number[], series: string) {
  return spectrum.map((sigma, i) => ({ module, series, index: i + 1, sigma })).filter((p) => isPlottable(p.sigma) && p.sigma > 0);
}

/** y range of the noise panel: the values and the requested ratio, padded by ≥ 5 % of it. */
function noiseDomain(values: number[], requested: number | undefined): [number, number] {
  const all = [...values, ...(requested === undefined ? [] : [requested])].filter(Number.isFinite);
  if (all.length === 0) return [0, 1];
  const lo = Math.min(...all),
    hi = Math.max(...all);
  const pad = Math.max(0.05 * Math.abs(requested ?? hi), 0.2 * (hi - lo), 1e-3);
  return [Math.max(0, lo - pad), hi + pad];
}
