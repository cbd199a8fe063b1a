// SVD analysis (step 2b) at rank r: how well rank r captures each module's teacher ΔW.
// Four panels: relative error histogram, energy ratio histogram, spectra, error vs energy.
import type { TopLevelSpec } from "vega-lite";
import { CATEGORY_COLORS, ROLE_COLORS, chartConfig, chartTitle } from "./chart-theme.js";
import { isPlottable } from "./smoothing.js";
import { LOG_AXIS, spreadIndices } from "./synthesis-chart.js";

export interface SvdAnalysisModule {
  name: string;
  /** ‖ΔW − ΔW_r‖_F / ‖ΔW‖_F */
  relError: number;
  /** Σ_{i≤r} σᵢ² / Σ σᵢ² */
  energy: number;
  /** Singular values of ΔW, descending. */
  spectrum: number[];
}

export interface SvdAnalysisInput {
  modules: SvdAnalysisModule[];
  rank: number;
  /** What ΔW is, for the title: "synthesized teacher ΔW", "real fine-tune ΔW = W_ft − W_base", … */
  subject: string;
  title?: string;
  /** How many spectra are drawn in colour (default 5, spread over the list); the rest are grey. */
  highlighted?: number;
}

const WIDTH = 420;
const HEIGHT = 260;

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

export function svdAnalysisChart(input: SvdAnalysisInput): TopLevelSpec {
  const modules = input.modules.filter((m) => isPlottable(m.relError) && isPlottable(m.energy));
  const errors = modules.map((m) => m.relError);
  const energies = modules.map((m) => m.energy);
  const withSpectrum = input.modules.filter((m) => isPlottable(m.spectrum[0]) && m.spectrum[0] > 0);
  const highlighted = new Set(spreadIndices(withSpectrum.length, input.highlighted ?? 5).map((i) => withSpectrum[i].name));
  const subtitle =
    `${input.modules.length} matrices · mean relative error ${fmt(mean(errors))} · mean energy ratio ${fmt(mean(energies))}` +
    (input.modules.length > modules.length ? ` · ${input.modules.length - modules.length} without finite metrics left out` : "");

  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: chartTitle(input.title ?? `SVD analysis of the ${input.subject} at rank r = ${input.rank}`, subtitle),
    config: chartConfig,
    vconcat: [
      {
        hconcat: [
          histogram(errors, "Relative reconstruction error", "‖ΔW − ΔWᵣ‖ / ‖ΔW‖, Frobenius norm (lower is better)"),
          histogram(energies, "Energy captured by rank r", "(σ₁² + … + σᵣ²) / Σᵢ σᵢ²  (higher is better)"),
        ],
      },
      {
        hconcat: [spectraPanel(withSpectrum, highlighted, input.rank), errorVsEnergyPanel(modules)],
        resolve: { scale: { color: "independent" }, legend: { color: "independent" } }, // module names vs series
      },
    ],
  } as TopLevelSpec;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : "n/a";
}

const meanLabel = { type: "text", align: "left", baseline: "top", dx: 4, y: 4, color: ROLE_COLORS.eval, fontSize: 12 } as const;

/** A histogram of values with a dashed line and label at their mean. */
function histogram(values: readonly number[], title: string, xTitle: string) {
  const m = mean(values);
  return {
    title: { text: title, fontSize: 14, anchor: "start" },
    width: WIDTH,
    height: HEIGHT,
    layer: [
      {
        data: { values: values.map((value) => ({ value })) },
        mark: { type: "bar", color: ROLE_COLORS.smoothedTrain, opacity: 0.85, binSpacing: 1 },
        encoding: {
          x: { field: "value", type: "quantitative", bin: { maxbins: 20 }, title: xTitle },
          y: { aggregate: "count", type: "quantitative", title: "number of matrices", axis: { tickMinStep: 1, format: "d" } },
        },
      },
      ...(Number.isFinite(m)
        ? [
            {
              data: { values: [{ mean: m, label: `mean ${fmt(m)}` }] },
              layer: [
                {
                  mark: { type: "rule", color: ROLE_COLORS.eval, strokeWidth: 2, strokeDash: [6, 4] },
                  encoding: { x: { field: "mean", type: "quantitative" } },
                },
                // a white outline first, so the label stays readable over the bars
                {
                  mark: { ...meanLabel, stroke: "white", strokeWidth: 4, strokeJoin: "round", color: "white" },
                  encoding: { x: { field: "mean", type: "quantitative" }, text: { field: "label" } },
                },
                { mark: meanLabel, encoding: { x: { field: "mean", type: "quantitative" }, text: { field: "label" } } },
              ],
            },
          ]
        : []),
    ],
  };
}

/** Normalized spectra σᵢ/σ₁ on a log axis: every module faint grey, a few in colour, rank r marked. */
function spectraPanel(modules: readonly SvdAnalysisModule[], highlighted: Set<string>, rank: number) {
  const points = modules.flatMap((m) => {
    const top = m.spectrum[0];
    if (!isPlottable(top) || top <= 0) return [];
    return m.spectrum
      .map((s, i) => ({ module: m.name, index: i + 1, ratio: s / top, highlighted: highlighted.has(m.name) }))
      .filter((p) => isPlottable(p.ratio) && p.ratio > 0);
  });
  const x = { field: "index", type: "quantitative", title: "singular value index i", axis: { tickMinStep: 1, format: "d" } } as const;
  const y = { field: "ratio", type: "quantitative", title: "σᵢ / σ₁  (log scale)", scale: { type: "log" }, axis: LOG_AXIS } as const;
  const names = [...highlighted];
  const others = points.filter((p) => !p.highlighted);
  return {
    title: {
      text: "Singular-value spectra",
      ...(others.length ? { subtitle: "grey: the other matrices" } : {}),
      fontSize: 14,
      anchor: "start",
    },
    width: WIDTH,
    height: HEIGHT,
    layer: [
      ...(others.length === 0 // an empty layer makes Vega warn
        ? []
        : [
            {
              data: { values: others },
              mark: { type: "line", color: "#9a9a9a", opacity: 0.25, strokeWidth: 1 },
              encoding: { x, y, detail: { field: "module", type: "nominal" } },
            },
          ]),
      {
        data: { values: points.filter((p) => p.highlighted) },
        mark: { type: "line", strokeWidth: 2 },
        encoding: {
          x,
          y,
          color: {
            field: "module",
            type: "nominal",
            title: null,
            scale: { domain: names, range: CATEGORY_COLORS },
            // below the plot: inside it would cover the spectra
            legend: { orient: "bottom", direction: "vertical", labelFontSize: 11, labelLimit: 400 },
          },
        },
      },
      {
        data: { values: [{ rank, label: `r = ${rank}` }] },
        layer: [
          {
            mark: { type: "rule", color: ROLE_COLORS.eval, strokeWidth: 2, strokeDash: [6, 4] },
            encoding: { x: { field: "rank", type: "quantitative" } },
          },
          {
            mark: { type: "text", align: "left", baseline: "bottom", dx: 4, y: "height", dy: -4, color: ROLE_COLORS.eval, fontSize: 12 },
            encoding: { x: { field: "rank", type: "quantitative" }, text: { field: "label" } },
          },
        ],
      },
    ],
  };
}

/**
 * Error against energy per module. For an exact SVD the two are tied: error = √(1 − energy); the
 * curve is drawn so points off it (randomized SVD, or metrics from a truncated spectrum) stand out.
 */
function errorVsEnergyPanel(modules: readonly SvdAnalysisModule[]) {
  const lo = Math.min(1, ...modules.map((m) => m.energy));
  const curve = Array.from({ length: 101 }, (_, i) => lo + ((1 - lo) * i) / 100).map((energy) => ({
    energy,
    error: Math.sqrt(Math.max(0, 1 - energy)),
  }));
  return {
    title: { text: "Error vs energy per matrix", fontSize: 14, anchor: "start" },
    width: WIDTH,
    height: HEIGHT,
    layer: [
      {
        data: { values: curve.map((p) => ({ ...p, series: "√(1 − energy): exact SVD" })) },
        mark: { type: "line", strokeDash: [4, 3], strokeWidth: 1.5 },
        encoding: {
          x: { field: "energy", type: "quantitative", title: "energy ratio", scale: { zero: false } },
          y: { field: "error", type: "quantitative", title: "relative error", scale: { zero: false } },
          color: seriesColor,
        },
      },
      {
        data: { values: modules.map((m) => ({ module: m.name, energy: m.energy, error: m.relError, series: "matrix" })) },
        mark: { type: "point", filled: true, size: 50, opacity: 0.75 },
        encoding: {
          x: { field: "energy", type: "quantitative" },
          y: { field: "error", type: "quantitative" },
          color: seriesColor,
        },
      },
    ],
  };
}

const seriesColor = {
  field: "series",
  type: "nominal",
  title: null,
  scale: { domain: ["matrix", "√(1 − energy): exact SVD"], range: [ROLE_COLORS.smoothedTrain, ROLE_COLORS.reference] },
  legend: { orient: "bottom-left", fillColor: "white", strokeColor: "#dddddd", padding: 6 }, // error falls as energy rises: that corner stays empty
} as const;
