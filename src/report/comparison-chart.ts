// Comparison (step 4): every run of every arm (random, svd, pissa, …) side by side, training loss
// per step on the left and held-out loss at each evaluation on the right, one colour per arm.
// Held-out loss is measured on the same full eval set at every point, so its first and last
// points compare like with like; the training loss is one batch per step, so it is drawn raw
// (faint) and smoothed (solid, on top), and its y-axis tops out at the smoothed curves: single-batch
// spikes run off the top instead of squashing the curves. Where an arm has several runs (seeds),
// each run is a thin line (its smoothed loss only) and the arm's mean over its runs a thick one,
// so that a study of dozens of runs stays readable.
// The same spec is the PNG (static) and the report's interactive chart: click a legend entry to
// show one arm (shift-click for more), drag or scroll to pan and zoom, hover for the values.
import type { TopLevelSpec } from "vega-lite";
import { CATEGORY_COLORS, ROLE_COLORS, chartConfig, chartTitle } from "./chart-theme.js";
import { emaSmooth, isPlottable, lossAxisDomain } from "./smoothing.js";

export interface RunCurves {
  /** The run's name: "random", "svd-s1", … */
  run: string;
  /** Its arm (init): "random", "svd", "pissa", … */
  arm: string;
  /** Raw training loss per optimizer step. */
  train: { step: number; loss: number }[];
  /** Held-out loss at each evaluation (step 0 = before training). */
  heldOut: { step: number; loss: number }[];
}

export interface ComparisonChartInput {
  /** In the order the arms should appear (the first run of each arm sets it). */
  runs: RunCurves[];
  title?: string;
  subtitle?: string;
  /** EMA factor β for the solid lines (default 0.9). */
  smoothing?: number;
  /** Drawn as a horizontal line in the held-out panel: the loss "steps to the held-out target" measures against. */
  heldOutTarget?: number;
}

const TRAIN_WIDTH = 560;
const HELD_OUT_WIDTH = 380;
const HEIGHT = 400;
/** The name of the legend selection: the arms shown (all when none is picked). */
const ARM_PICK = "armPick";

/** Line styles for the arms after the palette's first round of colours. */
const DASHES = [
  [1, 0],
  [6, 3],
  [2, 2],
];

/** Field names with `.`, `[` or `]` must be escaped in Vega-Lite field references. */
const fieldRef = (name: string) => name.replace(/[.[\]\\]/g, "\\$&");

export function comparisonChart(input: ComparisonChartInput): TopLevelSpec {
  const smoothing = input.smoothing ?? 0.9;
  const arms = [...new Set(input.runs.map((r) => r.arm))];
  const several = arms.length < input.runs.length;
  const color = {
    field: "arm",
    type: "nominal",
    title: "init",
    scale: { domain: arms, range: CATEGORY_COLORS },
    legend: { orient: "top", direction: "horizontal", symbolType: "stroke", symbolStrokeWidth: 4, symbolOpacity: 1 },
  } as const;
  // Beyond the palette's colours, arms repeat them dashed (solid, dashed, dotted, …), so no two arms look alike.
  const dash =
    arms.length > CATEGORY_COLORS.length
      ? {
          strokeDash: {
            field: "arm",
            type: "nominal",
            title: "init",
            scale: { domain: arms, range: arms.map((_, i) => DASHES[Math.floor(i / CATEGORY_COLORS.length) % DASHES.length]) },
          },
        }
      : {};
  const picked = (on: number, off: number) => ({ condition: { param: ARM_PICK, value: on }, value: off });
  const x = { field: "step", type: "quantitative", title: "optimizer step", axis: { tickMinStep: 1, format: "d" } } as const;

  const train = input.runs.flatMap((r) => {
    const points = r.train.filter((p) => isPlottable(p.step) && isPlottable(p.loss)).sort((a, b) => a.step - b.step);
    const smooth = emaSmooth(
      points.map((p) => p.loss),
      smoothing,
    );
    return points.map((p, i) => ({ run: r.run, arm: r.arm, step: p.step, raw: p.loss, smoothed: smooth[i] }));
  });
  const heldOut = input.runs.flatMap((r) =>
    r.heldOut
      .filter((p) => isPlottable(p.step) && isPlottable(p.loss))
      .map((p) => ({ run: r.run, arm: r.arm, step: p.step, loss: p.loss })),
  );
  // Several runs per arm: each arm's mean over its runs at every step where any has a value.
  const trainMeans = several ? armMeans(train, (p) => p.smoothed).map(({ mean, ...m }) => ({ ...m, smoothed: mean })) : [];
  const heldOutMeans = several ? armMeans(heldOut, (p) => p.loss).map(({ mean, ...m }) => ({ ...m, loss: mean })) : [];
  const yTrain = {
    field: "smoothed",
    type: "quantitative",
    title: "training loss (nats / token)",
    scale: {
      zero: false,
      // tops out at the thick curves: the raw losses', or with several runs per arm, single runs' early peaks run off the top
      domain: several
        ? lossAxisDomain(
            train.map((p) => p.smoothed),
            trainMeans.map((p) => p.smoothed),
          )
        : lossAxisDomain(
            train.map((p) => p.raw),
            train.map((p) => p.smoothed),
          ),
    },
  } as const;
  const runsWithTrain = input.runs.filter((r) => train.some((p) => p.run === r.run));

  const trainPanel = {
    title: {
      text: "Training loss per step",
      // two short lines: headless Vega has no font metrics and reserves room for long ones
      subtitle: several
        ? [`EMA, β = ${smoothing}: thin, each run; thick, the arm's mean over`, "its runs (raw one-batch losses not drawn; peaks cut off)"]
        : [`faint: raw, one batch · solid: EMA, β = ${smoothing}`, "raw spikes above the EMA curves are cut off"],
      fontSize: 14,
      anchor: "start",
    },
    width: TRAIN_WIDTH,
    height: HEIGHT,
    data: { values: train },
    layer: [
      {
        // the legend selection lives in the first layer: the merged legend takes its click handlers from there
        params: [
          { name: ARM_PICK, select: { type: "point", fields: ["arm"] }, bind: "legend" },
          { name: "zoomTrain", select: "interval", bind: "scales" },
        ],
        mark: { type: "line", strokeWidth: 1, clip: true },
        encoding: several
          ? { x, y: yTrain, color, ...dash, detail: { field: "run" }, opacity: picked(0.3, 0.05) }
          : { x, y: { ...yTrain, field: "raw" }, color, detail: { field: "run" }, opacity: picked(0.22, 0.04) },
      },
      {
        ...(several ? { data: { values: trainMeans } } : {}),
        mark: { type: "line", strokeWidth: 2.5, clip: true },
        encoding: { x, y: yTrain, color, ...dash, detail: { field: several ? "arm" : "run" }, opacity: picked(1, 0.12) },
      },
      ...(runsWithTrain.length === 0
        ? []
        : [
            several
              ? hoverRule(trainMeans, "arm", arms, "mean EMA")
              : hoverRule(
                  train,
                  "run",
                  runsWithTrain.map((r) => r.run),
                  "EMA",
                ),
          ]),
    ],
  };
  const xHeldOut = { ...x, axis: { ...x.axis, tickCount: 6 } }; // a narrow panel: fewer step labels, or they collide
  const yHeldOut = { field: "loss", type: "quantitative", title: "held-out loss (nats / token)", scale: { zero: false } } as const;
  const heldOutPanel = {
    title: {
      text: "Held-out loss at each evaluation",
      subtitle: several
        ? ["the whole held-out test set every time; step 0: before training", "thin: each run · thick: the arm's mean over its runs"]
        : "the whole held-out test set every time; step 0: before training",
      fontSize: 14,
      anchor: "start",
    },
    width: HELD_OUT_WIDTH,
    height: HEIGHT,
    data: { values: heldOut },
    layer: [
      {
        params: [{ name: "zoomHeldOut", select: "interval", bind: "scales" }],
        mark: several
          ? { type: "line", strokeWidth: 1, clip: true, point: { size: 12, filled: true } }
          : { type: "line", strokeWidth: 2.5, clip: true, point: { size: 50, filled: true } },
        encoding: {
          x: xHeldOut,
          y: yHeldOut,
          color,
          ...dash,
          detail: { field: "run" },
          opacity: several ? picked(0.35, 0.05) : picked(1, 0.12),
          tooltip: [
            { field: "run", type: "nominal" },
            { field: "step", type: "quantitative" },
            { field: "loss", type: "quantitative", title: "held-out loss", format: ".4f" },
          ],
        },
      },
      ...(several
        ? [
            {
              data: { values: heldOutMeans },
              mark: { type: "line", strokeWidth: 2.5, clip: true, point: { size: 50, filled: true } },
              encoding: {
                x: xHeldOut,
                y: yHeldOut,
                color,
                ...dash,
                detail: { field: "arm" },
                opacity: picked(1, 0.12),
                tooltip: [
                  { field: "arm", type: "nominal", title: "init" },
                  { field: "step", type: "quantitative" },
                  { field: "loss", type: "quantitative", title: "mean held-out loss", format: ".4f" },
                  { field: "runs", type: "quantitative", title: "runs" },
                ],
              },
            },
          ]
        : []),
      ...(input.heldOutTarget === undefined ? [] : [targetLayer(Number(input.heldOutTarget.toPrecision(4)))]),
    ],
  };
  const counts = arms.map((a) => input.runs.filter((r) => r.arm === a).length);
  const perArm =
    Math.min(...counts) === Math.max(...counts)
      ? `${counts[0]} runs per arm`
      : `${Math.min(...counts)}–${Math.max(...counts)} runs per arm`;
  const subtitle = [input.subtitle, several ? perArm : undefined].filter((s): s is string => s !== undefined);

  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: chartTitle(
      input.title ?? `Training and held-out loss: ${arms.length <= 4 ? arms.join(" vs ") : `${arms.length} arms`}`,
      subtitle.length ? subtitle : undefined,
    ),
    config: chartConfig,
    hconcat: heldOut.length > 0 ? [trainPanel, heldOutPanel] : [trainPanel],
  } as TopLevelSpec;
}

/**
 * Each arm's mean of `value` over its runs, at every step where at least one of them has a point,
 * with how many runs it averages.
 */
function armMeans<P extends { arm: string; step: number }>(points: P[], value: (p: P) => number) {
  const sums = new Map<string, { arm: string; step: number; sum: number; runs: number }>();
  for (const p of points) {
    const key = `${p.arm}\u0000${p.step}`;
    const s = sums.get(key) ?? { arm: p.arm, step: p.step, sum: 0, runs: 0 };
    s.sum += value(p);
    s.runs++;
    sums.set(key, s);
  }
  return [...sums.values()].map((s) => ({ arm: s.arm, step: s.step, mean: s.sum / s.runs, runs: s.runs }));
}

/** A vertical rule at the step nearest the pointer, whose tooltip lists every series' smoothed loss there (a run's, or an arm's mean). */
function hoverRule(points: object[], by: "run" | "arm", series: string[], what: string) {
  return {
    data: { values: points },
    transform: [{ pivot: by, value: "smoothed", groupby: ["step"] }],
    params: [{ name: "hoverStep", select: { type: "point", fields: ["step"], nearest: true, on: "pointerover", clear: "pointerout" } }],
    mark: { type: "rule", color: ROLE_COLORS.reference, strokeWidth: 1 },
    encoding: {
      x: { field: "step", type: "quantitative" },
      opacity: { condition: { param: "hoverStep", empty: false, value: 0.6 }, value: 0 },
      tooltip: [
        { field: "step", type: "quantitative" },
        ...series.map((name) => ({ field: fieldRef(name), type: "quantitative", title: `${name} (${what})`, format: ".4f" })),
      ],
    },
  };
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
