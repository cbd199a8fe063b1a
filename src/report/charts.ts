// Vega-Lite spec → SVG (vega, headless: renderer "none", no canvas) → PNG (resvg).
// resvg draws no text at all when it has no font, and says nothing; so before rendering we
// check that the configured fonts really draw glyphs, and stop with an actionable message if not.
import * as fs from "node:fs";
import * as path from "node:path";
import { Resvg, type ResvgRenderOptions } from "@resvg/resvg-js";
import type * as Vega from "vega";
import type { TopLevelSpec } from "vega-lite";
import { PACKAGE_ROOT } from "../paths.js";
import { writeFileAtomic } from "../util/atomic.js";
import { CHART_FONT } from "./chart-theme.js";

export type { TopLevelSpec } from "vega-lite";

/** DejaVu Sans and Bold (free licence, assets/fonts/LICENSE-DejaVu), shipped for systems without them. */
export const SHIPPED_FONT_DIR = `${PACKAGE_ROOT}assets/fonts`;

/** Where DejaVu Sans lives on common systems (Debian/Ubuntu first: fonts-dejavu-core). */
export const DEFAULT_FONT_DIRS = [
  "/usr/share/fonts/truetype/dejavu", // Debian, Ubuntu
  "/usr/share/fonts/dejavu-sans-fonts", // Fedora
  "/usr/share/fonts/dejavu", // older Fedora, openSUSE
  "/usr/share/fonts/TTF", // Arch
  "/usr/local/share/fonts",
  SHIPPED_FONT_DIR, // a copy that ships with svdlora, for machines without the package
];
const DEJAVU_SANS_FILES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf"];

export interface ChartFontOptions {
  /** Font files to load explicitly. Default: the DejaVu Sans files found in searchDirs. */
  fontFiles?: string[];
  /** Directories searched for DejaVu Sans when fontFiles is not given. Default: DEFAULT_FONT_DIRS. */
  searchDirs?: string[];
  /** Also load the fonts installed on the system (default true); resvg falls back to them. */
  loadSystemFonts?: boolean;
}

export interface RenderOptions {
  /** PNG pixels per SVG pixel (default 1; 2 for print). */
  scale?: number;
  fonts?: ChartFontOptions;
}

export interface RenderedChart {
  svg: string;
  png: Buffer;
  width: number;
  height: number;
  /** Warnings from Vega-Lite/Vega (e.g. dropped invalid values); empty for a clean chart. */
  warnings: string[];
}

export class MissingFontError extends Error {
  override name = "MissingFontError";
}

/** The DejaVu Sans files present in the given directories (first directory that has any wins). */
export function findDejaVuSansFiles(searchDirs: readonly string[] = DEFAULT_FONT_DIRS): string[] {
  for (const dir of searchDirs) {
    const found = DEJAVU_SANS_FILES.map((f) => path.join(dir, f)).filter((f) => fs.existsSync(f));
    if (found.length > 0) return found;
  }
  return [];
}

/** The resvg font settings for these options (explicit DejaVu files plus, by default, system fonts). */
export function resvgFontOptions(fonts: ChartFontOptions = {}): NonNullable<ResvgRenderOptions["font"]> {
  const fontFiles = fonts.fontFiles ?? findDejaVuSansFiles(fonts.searchDirs);
  return {
    fontFiles,
    loadSystemFonts: fonts.loadSystemFonts ?? true,
    defaultFontFamily: CHART_FONT,
    sansSerifFamily: CHART_FONT,
  };
}

const probeCache = new Map<string, boolean>();

/** True when resvg, with these font settings, actually draws glyphs for the chart font. */
export function fontsDrawText(font: NonNullable<ResvgRenderOptions["font"]>): boolean {
  const key = JSON.stringify(font);
  const cached = probeCache.get(key);
  if (cached !== undefined) return cached;
  const probe = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="32"><text x="4" y="24" font-family="${CHART_FONT}" font-size="20">Hg</text></svg>`;
  const pixels = new Resvg(probe, { font, background: "rgba(0,0,0,0)", logLevel: "off" }).render().pixels;
  let inked = false;
  for (let alpha = 3; alpha < pixels.length && !inked; alpha += 4) inked = pixels[alpha] > 0;
  probeCache.set(key, inked);
  return inked;
}

function assertFontsDrawText(fonts: ChartFontOptions | undefined): NonNullable<ResvgRenderOptions["font"]> {
  const font = resvgFontOptions(fonts);
  if (fontsDrawText(font)) return font;
  const looked = font.fontFiles?.length
    ? `the font files ${font.fontFiles.join(", ")}`
    : `DejaVu Sans in ${(fonts?.searchDirs ?? DEFAULT_FONT_DIRS).join(", ")}`;
  throw new MissingFontError(
    `cannot render chart text: no usable font found (looked for ${looked}` +
      `${font.loadSystemFonts ? " and the system fonts" : ""}). Without a font the PNG would have no text at all. ` +
      `Install DejaVu Sans (Debian/Ubuntu: apt-get install fonts-dejavu-core; Fedora: dnf install dejavu-sans-fonts) ` +
      `or pass font files explicitly (fonts.fontFiles).`,
  );
}

// vega and vega-lite take about a second to import: loaded on the first chart, so commands that
// draw nothing (and anything importing this module) start fast.
let vegaLibraries: Promise<{ vega: typeof Vega; compile: typeof import("vega-lite").compile }> | undefined;
const loadVega = () =>
  (vegaLibraries ??= Promise.all([import("vega"), import("vega-lite")]).then(([vega, vegaLite]) => ({ vega, compile: vegaLite.compile })));

/**
 * Headless there is no window to listen on for drag and zoom: Vega says so for every interactive
 * chart, and a still image loses nothing by it.
 */
const HEADLESS_NOISE = "Can not resolve event source: window";

/** A Vega logger that collects warnings instead of printing them. */
function collectingLogger(vega: typeof Vega, warnings: string[]): Vega.LoggerInterface {
  return vega.logger(vega.Warn, undefined, (_method, _level, args) => {
    const message = args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
    if (message !== HEADLESS_NOISE) warnings.push(message);
  });
}

/** Compiles a Vega-Lite spec to SVG markup (text stays text; no fonts are needed for this step). */
export async function renderSvg(spec: TopLevelSpec, warnings: string[] = []): Promise<string> {
  const { vega, compile } = await loadVega();
  const logger = collectingLogger(vega, warnings);
  const vegaSpec = compile(spec, { logger }).spec;
  const view = new vega.View(vega.parse(vegaSpec), { renderer: "none", logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders a Vega-Lite spec to SVG and PNG. Throws MissingFontError when no font can draw the text. */
export async function renderChart(spec: TopLevelSpec, options: RenderOptions = {}): Promise<RenderedChart> {
  const font = assertFontsDrawText(options.fonts); // before the work, and before anything is written
  const warnings: string[] = [];
  const svg = await renderSvg(spec, warnings);
  const scale = options.scale ?? 1;
  const image = new Resvg(svg, { font, background: "white", fitTo: { mode: "zoom", value: scale }, logLevel: "off" }).render();
  return { svg, png: image.asPng(), width: image.width, height: image.height, warnings };
}

/**
 * Renders spec and writes it atomically as PNG at pngPath, plus the SVG beside it (same name,
 * .svg) unless writeSvg is false. Creates the directory. Returns the rendered chart.
 */
export async function saveChart(
  pngPath: string,
  spec: TopLevelSpec,
  options: RenderOptions & { writeSvg?: boolean } = {},
): Promise<RenderedChart> {
  const chart = await renderChart(spec, options);
  fs.mkdirSync(path.dirname(path.resolve(pngPath)), { recursive: true });
  writeFileAtomic(pngPath, chart.png);
  if (options.writeSvg ?? true) writeFileAtomic(svgPathFor(pngPath), chart.svg);
  return chart;
}

/** plots/loss.png → plots/loss.svg (appends .svg when the name has no .png extension). */
export function svgPathFor(pngPath: string): string {
  return /\.png$/i.test(pngPath) ? pngPath.replace(/\.png$/i, ".svg") : `${pngPath}.svg`;
}
