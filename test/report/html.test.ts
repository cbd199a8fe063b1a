import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { saveChart } from "../../src/report/charts.js";
import { escapeHtml, imageMimeType, renderReportHtml, writeReportHtml, type HtmlReport } from "../../src/report/html.js";
import { PNG_SIGNATURE } from "./png.js";

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "svdlora-html-"));
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

  it("refuses a missing image by default, or shows a note in its place", async () => {
    const dir = tempDir();
    const report: HtmlReport = { title: "t", sections: [{ heading: "h", images: [{ path: "nope.png", caption: "gone" }] }] };
    assert.throws(() => writeReportHtml(path.join(dir, "r.html"), report), /report image not found: .*nope\.png/);
    assert.deepEqual(fs.readdirSync(dir), [], "nothing written");
    const html = renderReportHtml(report, dir, { missingImages: "note" });
    assert.match(html, /image not found: nope\.png/);
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
