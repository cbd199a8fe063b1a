// Training loss per step (raw and smoothed) and held-out (eval) loss per epoch, for one training run.
import type { TopLevelSpec } from "vega-lite";
import { PANEL_HEIGHT, PANEL_WIDTH, ROLE_COLORS, chartConfig, chartTitle } from "./chart-theme.js";
import { emaSmooth, isPlottable, lossAxisDomain } from "./smoothing.js";

export interface LossRow {
  step: number;
  loss: number;
  /** Set on the rows where an evaluation ran (typically the last step of each epoch). */
  evalLoss?: number;
  epoch: number;
}

export interface LossCurvesOptions {
  /** EMA factor β for the smoothed line (default 0.9). */
  smoothing?: number;
  subtitle?: string;
}

/** Legend entries; the smoothing is named so nobody mistakes the smooth line for the data. */
export function lossSeriesNames(smoothing: number): { raw: string; smoothed: string; eval: string } {
  return { raw: "train loss (per step)", smoothed: `train loss (EMA, β = ${smoothing})`, eval: "eval loss (per epoch)" };
}

export function lossCurvesChart(rows: readonly LossRow[], title: string, options: LossCurvesOptions = {}): TopLevelSpec {
  const smoothing = options.smoothing ?? 0.9;
  const names = lossSeriesNames(smoothing);
  const train = rows.filter((r) => isPlottable(r.step) && isPlottable(r.loss)).sort((a, b) => a.step - b.step);
  const smoothed = emaSmooth(
    train.map((r) => r.loss),
    smoothing,
  );
  const points = [
    ...train.map((r) => ({ step: r.step, loss: r.loss, epoch: r.epoch, series: names.raw })),
    ...train.map((r, i) => ({ step: r.step, loss: smoothed[i], epoch: r.epoch, series: names.smoothed })),
    ...rows
      .filter((r) => isPlottable(r.step) && isPlottable(r.evalLoss))
      .map((r) => ({ step: r.step, loss: r.evalLoss as number, epoch: r.epoch, series: names.eval })),
  ];
  // raw one-batch spikes above the EMA and eval curves are cut off, and the subtitle says so
  const domain = lossAxisDomain(
    train.map((r) => r.loss),
    [...smoothed, ...points.filter((p) => p.series === names.eval).map((p) => p.loss)],
  );
  const cut = domain !== undefined && train.some((r) => r.loss > domain[1]);
  const subtitle = [options.subtitle, cut ? "raw spikes above the EMA and eval curves are cut off" : undefined].filter(
    (s): s is string => s !== undefined,
  );
  const boundaries = epochBoundaries(train);
  // only series with data get a layer and a legend entry (an empty layer makes Vega warn)
  const allSeries = [
    { name: names.raw, color: ROLE_COLORS.rawTrain, mark: { type: "line", strokeWidth: 1.2, clip: true } },
    { name: names.smoothed, color: ROLE_COLORS.smoothedTrain, mark: { type: "line", strokeWidth: 2.5, clip: true } },
    { name: names.eval, color: ROLE_COLORS.eval, mark: { type: "line", strokeWidth: 2, clip: true, point: { size: 60 } } },
  ] as const;
  const withData = allSeries.filter((s) => points.some((p) => p.series === s.name));
  const series = withData.length > 0 ? withData : allSeries.slice(1, 2); // keeps axes and title on an empty chart

  const color = {
    field: "series",
    type: "nominal",
    title: null,
    scale: { domain: series.map((s) => s.name), range: series.map((s) => s.color) },
    legend: { orient: "top-right", fillColor: "white", strokeColor: "#dddddd", padding: 8 },
  } as const;
  const x = { field: "step", type: "quantitative", title: "optimizer step", axis: { tickMinStep: 1, format: "d" } } as const;
  const y = { field: "loss", type: "quantitative", title: "cross-entropy loss (nats / token)", scale: { zero: false, domain } } as const;
  const only = (series: string) => ({ filter: { field: "series", equal: series } });

  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: chartTitle(title, subtitle.length ? subtitle : undefined),
    config: chartConfig,
    width: PANEL_WIDTH,
    height: PANEL_HEIGHT,
    layer: [
      ...(boundaries.length === 0
        ? []
        : [
            {
              data: { values: boundaries },
              layer: [
                { mark: { type: "rule", color: "#bbbbbb", strokeDash: [3, 3] }, encoding: { x: { field: "step", type: "quantitative" } } },
                {
                  mark: { type: "text", align: "left", baseline: "top", dx: 3, dy: 4, color: "#888888", fontSize: 11 },
                  encoding: { x: { field: "step", type: "quantitative" }, y: { value: 0 }, text: { field: "label" } },
                },
              ],
            },
          ]),
      {
        data: { values: points },
        layer: series.map((s) => ({ transform: [only(s.name)], mark: s.mark, encoding: { x, y, color } })),
      },
    ],
  } as TopLevelSpec;
}

/**
 * Where each epoch after the first starts, halfway between its first step and the step before.
 * Rows count epochs either fractionally (the trainer logs 0.25, 0.5, …, 1.0 for the first) or as
 * whole numbers; ceil() groups both the same way. Labels count the groups, so 0- and 1-based
 * numbering both read "epoch 2" at the second epoch.
 */
export function epochBoundaries(rows: readonly LossRow[]): { step: number; label: string }[] {
  const out: { step: number; label: string }[] = [];
  for (let i = 1; i < rows.length; i++) {
    if (!isPlottable(rows[i].epoch) || !isPlottable(rows[i - 1].epoch)) continue;
    if (Math.ceil(rows[i].epoch) !== Math.ceil(rows[i - 1].epoch))
      out.push({ step: (rows[i - 1].step + rows[i].step) / 2, label: `epoch ${out.length + 2}` });
  }
  return out;
}
