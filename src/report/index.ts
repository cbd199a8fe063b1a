// Reports: charts (Vega-Lite → SVG → PNG) and the self-contained HTML report.
export {
  renderChart,
  renderSvg,
  saveChart,
  svgPathFor,
  findDejaVuSansFiles,
  resvgFontOptions,
  fontsDrawText,
  MissingFontError,
  DEFAULT_FONT_DIRS,
} from "./charts.js";
export type { ChartFontOptions, RenderOptions, RenderedChart, TopLevelSpec } from "./charts.js";
export { lossCurvesChart, lossSeriesNames, epochBoundaries } from "./loss-curves-chart.js";
export type { LossRow, LossCurvesOptions } from "./loss-curves-chart.js";
export { synthesisChart } from "./synthesis-chart.js";
export type { SynthesisModule, SynthesisChartInput } from "./synthesis-chart.js";
export { svdAnalysisChart } from "./svd-analysis-chart.js";
export type { SvdAnalysisModule, SvdAnalysisInput } from "./svd-analysis-chart.js";
export { comparisonChart } from "./comparison-chart.js";
export type { RunCurves, ComparisonChartInput } from "./comparison-chart.js";
export { formatDuration } from "./format.js";
export { emaSmooth } from "./smoothing.js";
export { writeReportHtml, renderReportHtml, escapeHtml, imageDataUri, imageMimeType, browserBuild, ReportError } from "./html.js";
export type {
  HtmlReport,
  HtmlReportOptions,
  ReportChart,
  ReportImage,
  ReportLink,
  ReportSection,
  ReportTable,
  ReportVerdict,
  TableCell,
} from "./html.js";
export { spectraChart, energyAtRank, SPECTRA_SERIES } from "./spectra-chart.js";
export type { SpectraModule, SpectraChartInput } from "./spectra-chart.js";
