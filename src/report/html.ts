// One self-contained HTML report: images inlined as data: URIs, inline CSS, no scripts and no
// external resources, so the file opens offline and can be mailed or archived as it is.
import * as fs from "node:fs";
import * as path from "node:path";
import { writeFileAtomic } from "../util/atomic.js";

export type TableCell = string | number | boolean | null | undefined;

export interface ReportImage {
  /** Absolute, or relative to the HTML file's directory (as a browser would resolve <img src>). */
  path: string;
  caption: string;
}

export interface ReportSection {
  heading: string;
  /** Shown as preformatted text (e.g. the text reports), whitespace kept. */
  text?: string;
  table?: { columns: string[]; rows: TableCell[][] };
  images?: ReportImage[];
}

export interface HtmlReport {
  title: string;
  sections: ReportSection[];
}

export interface HtmlReportOptions {
  /** What to do when an image file is missing: throw (default) or show a visible note in its place. */
  missingImages?: "error" | "note";
  /** Shown under the title, e.g. when and by what the report was made. */
  generatedBy?: string;
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
  if (!mime) throw new Error(`not a PNG, JPEG, GIF or SVG image: ${file}`);
  return `data:${mime};base64,${bytes.toString("base64")}`;
}

function formatCell(value: TableCell): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number" && Number.isFinite(value) && !Number.isInteger(value)) return String(Number(value.toPrecision(6)));
  return String(value);
}

function renderTable(table: NonNullable<ReportSection["table"]>): string {
  const head = table.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const rows = table.rows.map((row) => {
    const cells = row.map((v) => `<td${typeof v === "number" ? ' class="num"' : ""}>${escapeHtml(formatCell(v))}</td>`);
    return `<tr>${cells.join("")}</tr>`;
  });
  return `<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${rows.join("\n")}\n</tbody>\n</table>`;
}

function renderImage(image: ReportImage, baseDir: string, options: HtmlReportOptions): string {
  const file = path.resolve(baseDir, image.path);
  const caption = `<figcaption>${escapeHtml(image.caption)}</figcaption>`;
  if (!fs.existsSync(file)) {
    if ((options.missingImages ?? "error") === "error") throw new Error(`report image not found: ${file} (${image.caption})`);
    return `<figure><p class="missing">image not found: ${escapeHtml(image.path)}</p>${caption}</figure>`;
  }
  return `<figure><img src="${imageDataUri(file)}" alt="${escapeHtml(image.caption)}">${caption}</figure>`;
}

const CSS = `
body { font-family: "DejaVu Sans", system-ui, sans-serif; color: #222; max-width: 1200px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #1f4e99; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; color: #1f4e99; }
.generated { color: #666; font-size: .9em; }
pre { background: #f6f7f9; border: 1px solid #e1e4e8; padding: 1em; overflow-x: auto; font-size: .85em; line-height: 1.35; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #d5d8dc; padding: .35em .7em; text-align: left; }
th { background: #eef1f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e1e4e8; }
figcaption { color: #555; font-size: .9em; margin-top: .4em; }
.missing { color: #b00020; border: 1px dashed #b00020; padding: 1em; }
`.trim();

/** The report as one HTML string; relative image paths resolve against baseDir. */
export function renderReportHtml(report: HtmlReport, baseDir: string, options: HtmlReportOptions = {}): string {
  const sections = report.sections.map((s) => {
    const parts = [`<section>\n<h2>${escapeHtml(s.heading)}</h2>`];
    if (s.text !== undefined) parts.push(`<pre>${escapeHtml(s.text)}</pre>`);
    if (s.table) parts.push(renderTable(s.table));
    for (const image of s.images ?? []) parts.push(renderImage(image, baseDir, options));
    parts.push("</section>");
    return parts.join("\n");
  });
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
    ...sections,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

/** Writes the report atomically to htmlPath (creating its directory); images are read from disk now. */
export function writeReportHtml(htmlPath: string, report: HtmlReport, options: HtmlReportOptions = {}): void {
  const html = renderReportHtml(report, path.dirname(path.resolve(htmlPath)), options);
  fs.mkdirSync(path.dirname(path.resolve(htmlPath)), { recursive: true });
  writeFileAtomic(htmlPath, html);
}
