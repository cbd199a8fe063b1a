// One self-contained HTML report. Figures are inlined as data: URIs; interactive Vega-Lite charts
// are drawn in the page by vega, vega-lite and vega-embed, whose browser builds are inlined from
// node_modules; the CSS is inline. Nothing is fetched, so the file opens offline and can be moved,
// mailed or archived as it is. Links (a run's adapter, logs, summary, a chart's PNG) are relative
// to the report's folder, so they keep working wherever the folder goes.
//
// Every path a report names is absolute or relative to the report's folder, and must exist: a
// missing figure or file is an error, never a quiet hole in the page.
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import type { TopLevelSpec } from "vega-lite";
import { writeFileAtomic } from "../util/atomic.js";

/** A file the report points to; `path` is absolute or relative to the report's folder. */
export interface ReportLink {
  path: string;
  label: string;
}

export type TableCell = string | number | boolean | null | undefined | { links: ReportLink[] };

export interface ReportTable {
  columns: string[];
  rows: TableCell[][];
}

/** A PNG, JPEG, GIF or SVG figure, inlined. */
export interface ReportImage {
  path: string;
  caption: string;
}

/** A Vega-Lite chart drawn in the page (zoom, hover, legend toggles), its data inside the spec. */
export interface ReportChart {
  spec: TopLevelSpec;
  caption: string;
  /** The same chart as image files (e.g. its PNG for papers), linked under the chart. */
  files?: ReportLink[];
}

export interface ReportSection {
  heading: string;
  paragraphs?: string[];
  table?: ReportTable;
  charts?: ReportChart[];
  images?: ReportImage[];
  /** Preformatted text (e.g. a step's text report), whitespace kept. */
  text?: string;
  /** Preformatted text folded away under a summary line until opened. */
  folded?: { summary: string; text: string }[];
  links?: ReportLink[];
  subsections?: ReportSection[];
}

/** What the report leads with: the conclusion in a few lines, and the numbers behind it. */
export interface ReportVerdict {
  heading: string;
  lines: string[];
  tables?: ReportTable[];
  notes?: string[];
}

export interface HtmlReport {
  title: string;
  verdict?: ReportVerdict;
  sections: ReportSection[];
}

export interface HtmlReportOptions {
  /** Shown under the title, e.g. when and by what the report was made. */
  generatedBy?: string;
  /**
   * Files that are not at their final path yet, final path → where they are now (absolute): the
   * outputs staged with the report, swapped in together with it. Links name the final path.
   */
  pending?: ReadonlyMap<string, string>;
}

export class ReportError extends Error {
  override name = "ReportError";
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** The MIME type of an image from its first bytes (the file name may lie or be missing). */
export function imageMimeType(bytes: Uint8Array): string | null {
  const starts = (...sig: number[]) => sig.every((b, i) => bytes[i] === b);
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return "image/png";
  if (starts(0xff, 0xd8, 0xff)) return "image/jpeg";
  if (starts(0x47, 0x49, 0x46, 0x38)) return "image/gif";
  const head = Buffer.from(bytes.subarray(0, 512)).toString("utf8");
  if (/<svg[\s>]/.test(head)) return "image/svg+xml";
  return null;
}

/** A data: URI holding the image file's bytes. */
export function imageDataUri(file: string): string {
  const bytes = fs.readFileSync(file);
  const mime = imageMimeType(bytes);
  if (!mime) throw new ReportError(`not a PNG, JPEG, GIF or SVG image: ${file}`);
  return `data:${mime};base64,${bytes.toString("base64")}`;
}

// ---- the browser code for the charts ---------------------------------------------------------

/** The packages whose browser builds (their `unpkg` file, a UMD bundle) draw the charts, in load order. */
export const CHART_PACKAGES = ["vega", "vega-lite", "vega-embed"] as const;

/** The browser build of an npm package: the `unpkg` file named in its package.json. */
export function browserBuild(pkg: string): string {
  let dir = path.dirname(createRequire(import.meta.url).resolve(pkg));
  for (; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json");
    if (!fs.existsSync(manifest)) continue;
    const json = JSON.parse(fs.readFileSync(manifest, "utf8")) as { name?: string; unpkg?: string };
    if (json.name !== pkg) continue;
    const file = json.unpkg ? path.join(dir, json.unpkg) : null;
    if (file && fs.existsSync(file)) return file;
    break;
  }
  throw new ReportError(`the browser build of ${pkg} is missing from node_modules: reinstall the npm packages (npm ci)`);
}

let chartScripts: string | undefined;

/** vega, vega-lite and vega-embed as inline <script>s (read once; about 0.8 MB). */
function inlineChartScripts(): string {
  chartScripts ??= CHART_PACKAGES.map((pkg) => {
    // "</script" would end the element early; "<\/script" means the same inside JavaScript strings and regexes
    const code = fs.readFileSync(browserBuild(pkg), "utf8").replace(/<\/script/gi, "<\\/script");
    return `<script>/* ${pkg} */\n${code}\n</script>`;
  }).join("\n");
  return chartScripts;
}

/** Draws every chart of the page; a chart that fails says so in its place (and on the console). */
const CHART_BOOT = `
for (const el of document.querySelectorAll("div[data-spec]")) {
  const spec = JSON.parse(document.getElementById(el.dataset.spec).textContent);
  vegaEmbed(el, spec, { renderer: "svg", actions: { export: true, source: false, compiled: false, editor: false } })
    .then(() => el.setAttribute("data-rendered", "true"))
    .catch((e) => {
      el.className = "failed";
      el.textContent = "This chart could not be drawn: " + e.message;
      console.error(e);
    });
}`.trim();

// ---- rendering -------------------------------------------------------------------------------

function renderCell(ctx: Context, value: TableCell): string {
  if (value === null || value === undefined) return "<td>—</td>";
  if (typeof value === "object") return `<td>${value.links.map((l) => link(ctx, l)).join(" · ")}</td>`;
  if (typeof value !== "number") return `<td>${escapeHtml(String(value))}</td>`;
  const text = Number.isFinite(value) && !Number.isInteger(value) ? String(Number(value.toPrecision(6))) : String(value);
  return `<td class="num">${escapeHtml(text)}</td>`;
}

function renderTable(ctx: Context, table: ReportTable): string {
  const head = table.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const rows = table.rows.map((row) => `<tr>${row.map((v) => renderCell(ctx, v)).join("")}</tr>`);
  return `<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${rows.join("\n")}\n</tbody>\n</table>`;
}

/** What a report renders from: its folder (for paths) and the charts met so far. */
interface Context {
  baseDir: string;
  pending: ReadonlyMap<string, string>;
  charts: { id: string; spec: TopLevelSpec }[];
  ids: Set<string>;
}

/** Where a file the report names is now (see HtmlReportOptions.pending). */
const located = (ctx: Context, file: string) => ctx.pending.get(file) ?? file;

/** The absolute path of a file the report names; a missing one is an error. */
function existing(ctx: Context, file: string, what: string): string {
  const resolved = path.resolve(ctx.baseDir, file);
  if (!fs.existsSync(located(ctx, resolved)))
    throw new ReportError(
      `report ${what} not found: ${resolved}` +
        (path.isAbsolute(file) ? "" : ` (${file} is taken relative to the report's folder ${ctx.baseDir})`),
    );
  return resolved;
}

/** A relative URL from the report's folder to the file (a folder gets a trailing slash). */
function href(ctx: Context, file: string): string {
  const relative = path.relative(ctx.baseDir, file).split(path.sep).map(encodeURIComponent).join("/");
  return fs.statSync(located(ctx, file)).isDirectory() ? `${relative}/` : relative;
}

/** <a> to a file that must exist; its path relative to the report shows on hover. */
function link(ctx: Context, l: ReportLink): string {
  const file = existing(ctx, l.path, `link "${l.label}"`);
  return `<a href="${escapeHtml(href(ctx, file))}" title="${escapeHtml(path.relative(ctx.baseDir, file))}">${escapeHtml(l.label)}</a>`;
}

function renderLinks(ctx: Context, links: readonly ReportLink[]): string {
  const items = links.map(
    (l) =>
      `<li>${link(ctx, l)} <span class="path">${escapeHtml(path.relative(ctx.baseDir, path.resolve(ctx.baseDir, l.path)))}</span></li>`,
  );
  return `<ul class="links">\n${items.join("\n")}\n</ul>`;
}

function renderImage(ctx: Context, image: ReportImage): string {
  const file = existing(ctx, image.path, `image "${image.caption}"`);
  return `<figure><img src="${imageDataUri(located(ctx, file))}" alt="${escapeHtml(image.caption)}"><figcaption>${escapeHtml(image.caption)}</figcaption></figure>`;
}

function renderChart(ctx: Context, chart: ReportChart): string {
  const id = `chart-${ctx.charts.length + 1}`;
  ctx.charts.push({ id, spec: chart.spec });
  const files = (chart.files ?? []).map((l) => link(ctx, l));
  const caption = escapeHtml(chart.caption) + (files.length ? ` · ${files.join(" · ")}` : "");
  return `<figure class="chart"><div data-spec="${id}"></div><figcaption>${caption}</figcaption></figure>`;
}

/** A unique anchor for a heading. */
function anchor(ctx: Context, heading: string): string {
  const base =
    heading
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "") || "section";
  let id = base;
  for (let k = 2; ctx.ids.has(id); k++) id = `${base}-${k}`;
  ctx.ids.add(id);
  return id;
}

function renderSection(ctx: Context, s: ReportSection, level: 2 | 3, id: string): string {
  const parts = [`<section id="${id}">`, `<h${level}>${escapeHtml(s.heading)}</h${level}>`];
  for (const p of s.paragraphs ?? []) parts.push(`<p>${escapeHtml(p)}</p>`);
  if (s.table) parts.push(renderTable(ctx, s.table));
  for (const chart of s.charts ?? []) parts.push(renderChart(ctx, chart));
  for (const image of s.images ?? []) parts.push(renderImage(ctx, image));
  if (s.text !== undefined) parts.push(`<pre>${escapeHtml(s.text)}</pre>`);
  for (const f of s.folded ?? [])
    parts.push(`<details><summary>${escapeHtml(f.summary)}</summary><pre>${escapeHtml(f.text)}</pre></details>`);
  if (s.links?.length) parts.push(renderLinks(ctx, s.links));
  for (const sub of s.subsections ?? []) parts.push(renderSection(ctx, sub, 3, anchor(ctx, `${s.heading} ${sub.heading}`)));
  parts.push("</section>");
  return parts.join("\n");
}

function renderVerdict(ctx: Context, v: ReportVerdict): string {
  return [
    '<section class="verdict" id="verdict">',
    `<h2>${escapeHtml(v.heading)}</h2>`,
    ...v.lines.map((l) => `<p>${escapeHtml(l)}</p>`),
    ...(v.tables ?? []).map((t) => `<div class="wide">${renderTable(ctx, t)}</div>`),
    ...(v.notes?.length ? [`<ul class="notes">${v.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>`] : []),
    "</section>",
  ].join("\n");
}

/** JSON inside a <script> element: "<" escaped so no "</script>" or "<!--" can occur in it. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, "\\u003c");

const CSS = `
body { font-family: "DejaVu Sans", system-ui, sans-serif; color: #222; max-width: 1200px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #1f4e99; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; color: #1f4e99; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
nav { font-size: .9em; color: #555; }
nav a { margin-right: 1em; white-space: nowrap; }
.generated { color: #666; font-size: .9em; }
.verdict { background: #f3f7fc; border: 1px solid #c9d8ee; border-left: 5px solid #1f4e99; padding: .2em 1.2em 1em; margin-top: 1.5em; }
.verdict h2 { margin-top: .6em; }
.notes { color: #444; font-size: .92em; }
pre { background: #f6f7f9; border: 1px solid #e1e4e8; padding: 1em; overflow-x: auto; font-size: .85em; line-height: 1.35; }
details { margin: 1em 0; }
summary { cursor: pointer; color: #1f4e99; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #d5d8dc; padding: .35em .7em; text-align: left; }
th { background: #eef1f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e1e4e8; }
figure.chart > div, div.wide { overflow-x: auto; }
figcaption { color: #555; font-size: .9em; margin-top: .4em; }
.links { padding-left: 1.2em; }
.path { color: #777; font-size: .85em; font-family: monospace; }
.failed { color: #b00020; border: 1px dashed #b00020; padding: 1em; }
`.trim();

/** The report as one HTML string; relative paths resolve against baseDir (the report's folder). */
export function renderReportHtml(report: HtmlReport, baseDir: string, options: HtmlReportOptions = {}): string {
  const ctx: Context = { baseDir: path.resolve(baseDir), pending: options.pending ?? new Map(), charts: [], ids: new Set(["verdict"]) };
  const ids = report.sections.map((s) => anchor(ctx, s.heading));
  const verdict = report.verdict ? [renderVerdict(ctx, report.verdict)] : [];
  const sections = report.sections.map((s, i) => renderSection(ctx, s, 2, ids[i]));
  const nav = [...(report.verdict ? [["verdict", report.verdict.heading]] : []), ...report.sections.map((s, i) => [ids[i], s.heading])]
    .map(([id, heading]) => `<a href="#${id}">${escapeHtml(heading)}</a>`)
    .join(" ");
  const charts =
    ctx.charts.length === 0
      ? []
      : [
          '<noscript><p class="failed">The charts of this report are drawn by JavaScript, which is off; the PNG beside each chart shows it too.</p></noscript>',
          ...ctx.charts.map((c) => `<script type="application/json" id="${c.id}">${scriptJson(c.spec)}</script>`),
          inlineChartScripts(),
          `<script>\n${CHART_BOOT}\n</script>`,
        ];
  return [
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(report.title)}</title>`,
    `<style>\n${CSS}\n</style>`,
    "</head>",
    "<body>",
    `<h1>${escapeHtml(report.title)}</h1>`,
    ...(options.generatedBy ? [`<p class="generated">${escapeHtml(options.generatedBy)}</p>`] : []),
    `<nav>${nav}</nav>`,
    ...verdict,
    ...sections,
    ...charts,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

/** Writes the report atomically to htmlPath (creating its folder); every figure and file it names is read or checked now. */
export function writeReportHtml(htmlPath: string, report: HtmlReport, options: HtmlReportOptions = {}): void {
  const dir = path.dirname(path.resolve(htmlPath));
  const html = renderReportHtml(report, dir, options);
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(htmlPath, html);
}
