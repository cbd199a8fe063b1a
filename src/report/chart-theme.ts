// One look for every figure in the report: white background, DejaVu Sans (the font the renderer
// is pointed at, so text never silently disappears), readable sizes, a colour-blind-safe palette.
import type { Config } from "vega-lite";

/** The font family every chart asks for; charts.ts makes sure the renderer has it (or a fallback). */
export const CHART_FONT = "DejaVu Sans";

/** Size of a single-panel chart; multi-panel charts divide roughly this much width among panels. */
export const PANEL_WIDTH = 900;
export const PANEL_HEIGHT = 500;

/** Tableau 10: distinguishable, and what readers of ML papers are used to. */
export const CATEGORY_COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#e15759",
  "#76b7b2",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

/** Colours for the roles that recur across charts. */
export const ROLE_COLORS = {
  rawTrain: "#a6c8e6", // light: the noisy per-step loss is context, not the message
  smoothedTrain: "#1f4e99",
  eval: "#e0631b",
  reference: "#7f7f7f",
};

export const chartConfig: Config = {
  background: "white",
  padding: 16,
  font: CHART_FONT,
  view: { stroke: "#d0d0d0" },
  title: { fontSize: 18, fontWeight: "bold", subtitleFontSize: 13, subtitleColor: "#555555", anchor: "start", offset: 12 },
  axis: {
    labelFontSize: 12,
    titleFontSize: 13,
    titleFontWeight: "normal",
    gridColor: "#ececec",
    tickColor: "#999999",
    domainColor: "#777777",
  },
  legend: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: "normal", symbolSize: 120, labelLimit: 320 },
  header: { labelFontSize: 13, titleFontSize: 14, labelLimit: 280 },
  concat: { spacing: 36 },
  line: { strokeWidth: 2 },
};

/** Title block with an optional subtitle line (Vega-Lite titles accept both). */
export function chartTitle(text: string, subtitle?: string | string[]): { text: string; subtitle?: string | string[] } {
  return subtitle === undefined ? { text } : { text, subtitle };
}
