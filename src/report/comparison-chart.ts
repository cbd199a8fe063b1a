// Comparison (step 4): the training-loss curves of every arm (random, svd, pissa, …) overlaid,
// and their initial and final loss side by side.
import type { TopLevelSpec } from "vega-lite";
import { CATEGORY_COLORS, ROLE_COLORS, chartConfig, chartTitle } from "./chart-theme.js";
import { emaSmooth, isPlottable } from "./smoothing.js";

export interface ComparisonArm {
  /** "random", "svd", "pissa", … */
  name: string;
  curve: { step: number; loss: number }[];
  initialLoss: number;
  finalLoss: number;
}

export interface ComparisonChartInput {
  arms: ComparisonArm[];
  title?: string;
  subtitle?: string;
  /** EMA factor β for the solid lines (default 0.9). */
  smoothing?: number;
  /** Drawn as a horizontal line: the loss used for "steps to reach target". */
  targetLoss?: number;
}

const CURVES_WIDTH = 640;
const BARS_WIDTH = 300;
const HEIGHT = 420;

export function comparisonChart(input: ComparisonChartInput): TopLevelSpec {
  const smoothing = input.smoothing ?? 0.9;
  const names = input.arms.map((a) => a.name);
  const color = {
    field: "arm",
    type: "nominal",
    title: "init",
    scale: { domain: names, range: CATEGORY_COLORS },
    // one legend for both panels; full opacity, or it copies the faint raw lines
    legend: { orient: "top", direction: "horizontal", symbolType: "stroke", symbolStrokeWidth: 4, symbolOpacity: 1 },
  } as const;
  const curves = input.arms.flatMap((arm) => {
    const points = arm.curve.filter((p) => isPlottable(p.step) && isPlottable(p.loss)).sort((a, b) => a.step - b.step);
    const smooth = emaSmooth(
      points.map((p) => p.loss),
      smoothing,
    );
    return points.map((p, i) => ({ arm: arm.name, step: p.step, raw: p.loss, smoothed: smooth[i] }));
  });
  const bars = input.arms
    .flatMap((arm) => [
      { arm: arm.name, which: "initial loss", loss: arm.initialLoss },
      { arm: arm.name, which: "final loss", loss: arm.finalLoss },
    ])
    .filter((b) => isPlottable(b.loss));
  const x = { field: "step", type: "quantitative", title: "optimizer step", axis: { tickMinStep: 1, format: "d" } } as const;

  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: chartTitle(input.title ?? `Comparison: ${names.join(" vs ")}`, input.subtitle),
    config: chartConfig,
    hconcat: [
      {
        title: { text: "Training loss per step", subtitle: `faint: raw · solid: EMA, β = ${smoothing}`, fontSize: 14, anchor: "start" },
        width: CURVES_WIDTH,
        height: HEIGHT,
        data: { values: curves },
        layer: [
          {
            mark: { type: "line", strokeWidth: 1, opacity: 0.3 },
            encoding: { x, y: { field: "raw", type: "quantitative", title: "training loss", scale: { zero: false } }, color },
          },
          { mark: { type: "line", strokeWidth: 2.5 }, encoding: { x, y: { field: "smoothed", type: "quantitative" }, color } },
          ...(input.targetLoss === undefined ? [] : [targetLayer(input.targetLoss)]),
        ],
      },
      {
        title: { text: "Initial and final loss", fontSize: 14, anchor: "start" },
        width: BARS_WIDTH,
        height: HEIGHT,
        data: { values: bars },
        encoding: {
          x: {
            field: "which",
            type: "nominal",
            title: null,
            sort: ["initial loss", "final loss"],
            axis: { labelAngle: 0, labelFontSize: 13 },
          },
          xOffset: { field: "arm", type: "nominal", sort: names },
          y: { field: "loss", type: "quantitative", title: "loss" },
        },
        layer: [
          { mark: { type: "bar" }, encoding: { color } },
          {
            mark: { type: "text", baseline: "bottom", dy: -3, fontSize: 11, color: "#333333" },
            encoding: { text: { field: "loss", type: "quantitative", format: ".3f" } },
          },
        ],
      },
    ],
  } as TopLevelSpec;
}

function targetLayer(target: number) {
  return {
    data: { values: [{ target, label: `target ${target}` }] },
    layer: [
      {
        mark: { type: "rule", color: ROLE_COLORS.reference, strokeDash: [6, 4], strokeWidth: 1.5 },
        encoding: { y: { field: "target", type: "quantitative" } },
      },
      {
        mark: { type: "text", align: "right", baseline: "bottom", x: "width", dy: -3, color: ROLE_COLORS.reference, fontSize: 12 },
        encoding: { y: { field: "target", type: "quantitative" }, text: { field: "label" } },
      },
    ],
  };
}
