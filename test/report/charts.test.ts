import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
  MissingFontError,
  fontsDrawText,
  renderChart,
  resvgFontOptions,
  saveChart,
  svgPathFor,
  type TopLevelSpec,
} from "../../src/report/charts.js";
import { emaSmooth } from "../../src/report/smoothing.js";
import { pngSize } from "./png.js";
import { tempDir as sharedTempDir } from "../helpers.js";

const tinySpec: TopLevelSpec = {
  title: "Tiny chart",
  width: 200,
  height: 100,
  data: {
    values: [
      { x: 1, y: 2 },
      { x: 2, y: 3 },
    ],
  },
  mark: "line",
  encoding: { x: { field: "x", type: "quantitative", title: "the x axis" }, y: { field: "y", type: "quantitative" } },
};

const tempDir = () => sharedTempDir("report");

describe("renderChart", () => {
  it("renders a PNG whose size matches, and an SVG with the text in it", async () => {
    const chart = await renderChart(tinySpec);
    const size = pngSize(chart.png);
    assert.deepEqual(size, { width: chart.width, height: chart.height });
    assert.ok(size.width > 200 && size.height > 100, `${size.width}×${size.height}`);
    assert.match(chart.svg, />Tiny chart</);
    assert.match(chart.svg, />the x axis</);
    assert.deepEqual(chart.warnings, []);
  });

  it("scales the PNG, not the layout", async () => {
    const one = await renderChart(tinySpec);
    const two = await renderChart(tinySpec, { scale: 2 });
    assert.equal(two.width, one.width * 2);
    assert.equal(two.svg, one.svg);
  });

  it("finds a font on this machine that draws text", () => {
    assert.ok(fontsDrawText(resvgFontOptions()), "install fonts-dejavu-core");
    assert.ok(resvgFontOptions().fontFiles!.some((f) => f.endsWith("DejaVuSans.ttf")));
  });

  it("throws a clear error instead of drawing a chart without text when no font is usable", async () => {
    const empty = tempDir();
    for (const fonts of [
      { fontFiles: [], loadSystemFonts: false },
      { searchDirs: [empty], loadSystemFonts: false },
    ]) {
      await assert.rejects(renderChart(tinySpec, { fonts }), (error: Error) => {
        assert.ok(error instanceof MissingFontError);
        assert.match(error.message, /no usable font/);
        assert.match(error.message, /fonts-dejavu-core/);
        return true;
      });
    }
    await assert.rejects(renderChart(tinySpec, { fonts: { searchDirs: [empty], loadSystemFonts: false } }), new RegExp(empty));
  });

  it("counts a font file that does not exist as no font", async () => {
    await assert.rejects(
      renderChart(tinySpec, { fonts: { fontFiles: ["/nonexistent/font.ttf"], loadSystemFonts: false } }),
      MissingFontError,
    );
  });

  it("collects Vega-Lite warnings instead of printing them", async () => {
    const spec = {
      ...tinySpec,
      encoding: { ...tinySpec.encoding, color: { field: "y", type: "quantitative", scale: { type: "band" } } },
    } as TopLevelSpec;
    const chart = await renderChart(spec);
    assert.ok(chart.warnings.length > 0);
  });
});

describe("saveChart", () => {
  it("writes the PNG and the SVG beside it, creating the directory", async () => {
    const dir = path.join(tempDir(), "plots");
    const png = path.join(dir, "loss_curves_random.png");
    await saveChart(png, tinySpec);
    pngSize(fs.readFileSync(png));
    assert.match(fs.readFileSync(path.join(dir, "loss_curves_random.svg"), "utf8"), /^<svg/);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["loss_curves_random.png", "loss_curves_random.svg"]); // no temp files left
  });

  it("writes no file when fonts are missing", async () => {
    const dir = tempDir();
    await assert.rejects(
      saveChart(path.join(dir, "x.png"), tinySpec, { fonts: { fontFiles: [], loadSystemFonts: false } }),
      MissingFontError,
    );
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it("can skip the SVG", async () => {
    const dir = tempDir();
    await saveChart(path.join(dir, "x.png"), tinySpec, { writeSvg: false });
    assert.deepEqual(fs.readdirSync(dir), ["x.png"]);
  });

  it("names the SVG after the PNG", () => {
    assert.equal(svgPathFor("plots/a.png"), "plots/a.svg");
    assert.equal(svgPathFor("plots/a.PNG"), "plots/a.svg");
    assert.equal(svgPathFor("plots/a"), "plots/a.svg");
  });
});

describe("emaSmooth", () => {
  it("is bias-corrected: a constant stays constant from the first point", () => {
    for (const v of emaSmooth([2, 2, 2, 2], 0.9)) assert.ok(Math.abs(v - 2) < 1e-12);
  });
  it("follows the recurrence", () => {
    const [a, b] = emaSmooth([1, 3], 0.5);
    assert.equal(a, 1);
    assert.ok(Math.abs(b - (0.5 * 0.5 * 1 + 0.5 * 3) / 0.75) < 1e-12);
  });
  it("β = 0 returns the input; β outside [0, 1) is refused", () => {
    assert.deepEqual(emaSmooth([1, 5, 2], 0), [1, 5, 2]);
    assert.throws(() => emaSmooth([1], 1), RangeError);
    assert.throws(() => emaSmooth([1], -0.1), RangeError);
  });
});
