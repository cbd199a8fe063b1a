import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { saveChart } from "../../src/report/charts.js";
import {
  CHART_PACKAGES,
  browserBuild,
  escapeHtml,
  imageMimeType,
  renderReportHtml,
  writeReportHtml,
  type HtmlReport,
} from "../../src/report/html.js";
import { PNG_SIGNATURE } from "./png.js";
import { tempDir as sharedTempDir } from "../helpers.js";

const tempDir = () => sharedTempDir("html");
const hostile = `<script>alert("x")</script> & 'quotes'`;

/** Everything that would make a browser fetch something, once the inlined data: URIs are removed. */
function externalReferences(html: string): string[] {
  const withoutData = html.replace(/data:[a-z+/]+;base64,[A-Za-z0-9+/=]+/g, "");
  return withoutData.match(/https?:|\/\/[a-z]|<script|<link|<iframe|@import|url\(|src="(?!")/gi) ?? [];
}

async function reportWithChart(dir: string): Promise<HtmlReport> {
  await saveChart(path.join(dir, "plots", "tiny.png"), {
    title: "Tiny",
    width: 120,
    height: 60,
    data: {
      values: [
        { x: 1, y: 1 },
        { x: 2, y: 3 },
      ],
    },
    mark: "line",
    encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
  });
  return {
    title: `Report ${hostile}`,
    sections: [
      { heading: `Heading ${hostile}`, text: `line 1\n  indented <b>not bold</b>\nσ = 0.5` },
      {
        heading: "Numbers",
        table: {
          columns: ["arm", "final loss", `col ${hostile}`],
          rows: [
            ["random", 0.61234567, 3],
            ["svd", null, hostile],
          ],
        },
      },
      {
        heading: "Charts",
        images: [
          { path: "plots/tiny.png", caption: `Tiny chart ${hostile}` },
          { path: path.join(dir, "plots", "tiny.svg"), caption: "as SVG" },
        ],
      },
    ],
  };
}

describe("writeReportHtml", () => {
  it("writes one self-contained file: images inlined, text escaped, tables as tables", async () => {
    const dir = tempDir();
    const report = await reportWithChart(dir);
    const file = path.join(dir, "report.html");
    writeReportHtml(file, report, { generatedBy: "svdlora test" });
    const html = fs.readFileSync(file, "utf8");

    assert.match(html, /^<!DOCTYPE html>/);
    assert.ok(!html.includes("<script>alert"), "raw script tag from text");
    assert.ok(html.includes(escapeHtml(hostile)));
    assert.ok(html.includes("<pre>line 1\n  indented &lt;b&gt;not bold&lt;/b&gt;\nσ = 0.5</pre>"), "preformatted text keeps whitespace");
    assert.match(html, /<th>final loss<\/th>/);
    assert.match(html, /<td class="num">0\.612346<\/td>/);
    assert.match(html, /<td>—<\/td>/);
    assert.match(html, /<figcaption>Tiny chart &lt;script&gt;/);

    const png = html.match(/<img src="data:image\/png;base64,([A-Za-z0-9+/=]+)"/);
    assert.ok(png, "PNG embedded as a data: URI");
    const bytes = Buffer.from(png[1], "base64");
    assert.ok(bytes.subarray(0, 8).equals(PNG_SIGNATURE));
    assert.ok(bytes.equals(fs.readFileSync(path.join(dir, "plots", "tiny.png"))), "the image is the file, byte for byte");
    assert.match(html, /<img src="data:image\/svg\+xml;base64,/);

    assert.deepEqual(externalReferences(html), []);
  });

  it("refuses a missing image, naming where it looked", async () => {
    const dir = tempDir();
    const report: HtmlReport = { title: "t", sections: [{ heading: "h", images: [{ path: "nope.png", caption: "gone" }] }] };
    assert.throws(
      () => writeReportHtml(path.join(dir, "r.html"), report),
      new RegExp(`report image "gone" not found: ${path.join(dir, "nope.png")} \\(nope\\.png is taken relative to the report's folder`),
    );
    assert.deepEqual(fs.readdirSync(dir), [], "nothing written");
  });

  it("refuses a file that is not an image", () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "notes.png"), "plain text");
    assert.throws(
      () => renderReportHtml({ title: "t", sections: [{ heading: "h", images: [{ path: "notes.png", caption: "c" }] }] }, dir),
      /not a PNG/,
    );
  });
});

describe("charts, links and the verdict", () => {
  const spec = (title: string) =>
    ({
      title,
      data: { values: [{ x: 1, y: 2 }] },
      mark: "point",
      encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
    }) as const;
  /** The JSON of each chart, as the page's script will parse it. */
  const chartSpecs = (html: string) =>
    [...html.matchAll(/<script type="application\/json" id="(chart-\d+)">(.*?)<\/script>/g)].map((m) => ({
      id: m[1],
      spec: JSON.parse(m[2]),
    }));

  it("inlines each chart's spec and vega, vega-lite and vega-embed once, and nothing from outside", () => {
    const dir = tempDir();
    const sneaky = `</script><script>alert("x")</script><!--`;
    const report: HtmlReport = {
      title: "charts",
      sections: [
        { heading: "one", charts: [{ spec: spec(sneaky), caption: "first" }] },
        { heading: "two", charts: [{ spec: spec("second"), caption: "second" }] },
      ],
    };
    const html = renderReportHtml(report, dir);
    assert.deepEqual(
      chartSpecs(html).map((c) => [c.id, c.spec.title]),
      [
        ["chart-1", sneaky],
        ["chart-2", "second"],
      ],
    );
    assert.match(html, /<div data-spec="chart-1"><\/div>[\s\S]*<div data-spec="chart-2"><\/div>/);
    for (const pkg of CHART_PACKAGES) assert.equal(html.split(`<script>/* ${pkg} */`).length, 2, `${pkg} inlined once`);
    assert.equal((html.match(/<script>alert/g) ?? []).length, 0, "a spec cannot close its script element");
    assert.doesNotMatch(html, /<script[^>]*\ssrc=|<link|<iframe|@import/);
    const code = CHART_PACKAGES.reduce((n, pkg) => n + fs.statSync(browserBuild(pkg)).size, 0);
    assert.ok(html.length < code + 100_000, `${html.length} bytes for ${code} bytes of chart code`);

    const plain = renderReportHtml({ title: "no charts", sections: [{ heading: "h", text: "t" }] }, dir);
    assert.doesNotMatch(plain, /<script/, "a report without charts carries no code");
    assert.ok(plain.length < 10_000);
  });

  it("links files and folders relative to the report's folder, and refuses a missing one", () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, "runs", "final model"), { recursive: true });
    fs.writeFileSync(path.join(dir, "runs", "log #1.csv"), "step\n");
    const links = [
      { path: "runs/final model", label: "adapter" },
      { path: path.join(dir, "runs", "log #1.csv"), label: "log" },
    ];
    const html = renderReportHtml(
      {
        title: "links",
        sections: [{ heading: "files", links, table: { columns: ["run", "files"], rows: [["a", { links }]] } }],
      },
      dir,
    );
    assert.equal(html.split('<a href="runs/final%20model/"').length, 3, "folder link, in the list and in the table");
    assert.equal(html.split('<a href="runs/log%20%231.csv"').length, 3, "an absolute path becomes relative");
    assert.throws(
      () => renderReportHtml({ title: "t", sections: [{ heading: "h", links: [{ path: "runs/nope.json", label: "summary" }] }] }, dir),
      /report link "summary" not found: .*nope\.json/,
    );
    // the demo's bug: with the report in exp/, a path relative to the working directory ("exp/runs/…")
    // joined onto the report's folder again; now an error, not a hole in the page
    const exp = path.join(dir, "exp");
    fs.cpSync(path.join(dir, "runs"), path.join(exp, "runs"), { recursive: true });
    assert.throws(
      () => renderReportHtml({ title: "t", sections: [{ heading: "h", links: [{ path: "exp/runs/log #1.csv", label: "log" }] }] }, exp),
      new RegExp(`not found: ${path.join(exp, "exp", "runs")}.* is taken relative to the report's folder`),
    );
  });

  it("leads with the verdict, its table and notes, and lists every section", () => {
    const html = renderReportHtml(
      {
        title: "t",
        verdict: {
          heading: "Verdict",
          lines: ["svd beats random"],
          tables: [
            { columns: ["metric", "svd"], rows: [["loss", 0.5]] },
            { columns: ["metric", "pissa"], rows: [["loss", 0.25]] },
          ],
          notes: ["one seed"],
        },
        sections: [{ heading: "Curves" }, { heading: "Curves" }],
      },
      tempDir(),
    );
    const verdict = html.indexOf('<section class="verdict" id="verdict">');
    assert.ok(verdict > 0 && verdict < html.indexOf('<section id="curves">'));
    assert.match(
      html,
      /<p>svd beats random<\/p>\n<div class="wide"><table>[\s\S]*<td class="num">0\.5<\/td>[\s\S]*<div class="wide"><table>[\s\S]*<td class="num">0\.25<\/td>[\s\S]*<li>one seed<\/li>/,
    );
    assert.match(html, /<nav><a href="#verdict">Verdict<\/a> <a href="#curves">Curves<\/a> <a href="#curves-2">Curves<\/a><\/nav>/);
  });
});

describe("escapeHtml and imageMimeType", () => {
  it("escapes the five HTML metacharacters", () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  });
  it("tells image types by their bytes", () => {
    assert.equal(imageMimeType(PNG_SIGNATURE), "image/png");
    assert.equal(imageMimeType(Buffer.from([0xff, 0xd8, 0xff, 0xe0])), "image/jpeg");
    assert.equal(imageMimeType(Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">')), "image/svg+xml");
    assert.equal(imageMimeType(Buffer.from("hello")), null);
  });
});
