// report.html in a real browser: Debian's chromium, headless, driven by playwright-core. The report
// of a sample experiment (written with a relative --output-dir, as the demo does) must show every
// figure and draw every chart, with a clean console and no request other than file: and data:;
// and again after its folder is copied elsewhere and the original deleted.
// Needs /usr/bin/chromium: `npm run setup` installs it (apt, as root on Debian/Ubuntu).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type Browser, type Page, chromium } from "playwright-core";
import { writeExperimentReport } from "../../src/pipeline/report.js";
import { writeSampleExperiment } from "../report/sample-experiment.js";
import { tempDir } from "../helpers.js";

const CHROMIUM = "/usr/bin/chromium";
// Without the background-networking flags Chromium phones home at start, which a closed network refuses.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

interface PageReport {
  images: { alt: string; width: number; height: number }[];
  charts: { id: string; rendered: boolean; width: number; height: number; lines: number }[];
  links: string[];
  sections: string[];
}

/** How many of the charts' lines are drawn faint (an arm not picked in the legend); runs in the page. */
const countFaintLines = () =>
  [...document.querySelectorAll("div[data-spec] .mark-line path")].filter((p) => Number(p.getAttribute("opacity") ?? 1) < 0.2).length;

/** Clicks an arm in the first chart's legend, then hovers the training panel: what dims, what the tooltip says. */
async function interact(page: Page, arm: string): Promise<{ faintBefore: number; faintAfter: number; tooltip: string }> {
  const chart = page.locator("div[data-spec]").first();
  await chart.scrollIntoViewIfNeeded();
  const faintBefore = await page.evaluate(countFaintLines);
  // Vega listens on its whole SVG, so click where the label is rather than on the element
  const label = await chart
    .locator("svg text", { hasText: new RegExp(`^${arm}$`) })
    .first()
    .boundingBox();
  assert.ok(label, `legend entry ${arm}`);
  await page.mouse.click(label.x + label.width / 2, label.y + label.height / 2);
  await page.waitForFunction(`(${countFaintLines})() > ${faintBefore}`, null, { timeout: 5000 });
  const faintAfter = await page.evaluate(countFaintLines);
  const box = (await chart.boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.6, { steps: 4 });
  await page.waitForSelector("#vg-tooltip-element.visible", { timeout: 5000 });
  const tooltip = await page.locator("#vg-tooltip-element").innerText();
  return { faintBefore, faintAfter, tooltip };
}

/** Opens the report, waits for its charts, and reads back what the browser drew and fetched. */
async function openReport(
  browser: Browser,
  file: string,
  o: { interactWith?: string } = {},
): Promise<PageReport & { errors: string[]; requests: string[]; interaction?: Awaited<ReturnType<typeof interact>> }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("request", (r) => requests.push(r.url()));
  try {
    await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
    // each chart ends drawn (data-rendered) or failed (class "failed", with the reason in its place)
    await page.waitForFunction(
      () => [...document.querySelectorAll<HTMLElement>("div[data-spec]")].every((el) => el.dataset.rendered || el.className === "failed"),
      null,
      { timeout: 20_000 },
    );
    const drawn = await page.evaluate(() => ({
      images: [...document.images].map((img) => ({ alt: img.alt, width: img.naturalWidth, height: img.naturalHeight })),
      charts: [...document.querySelectorAll<HTMLElement>("div[data-spec]")].map((el) => {
        const svg = el.querySelector("svg");
        const box = svg?.getBoundingClientRect();
        return {
          id: el.dataset.spec ?? "",
          rendered: el.dataset.rendered === "true",
          width: box?.width ?? 0,
          height: box?.height ?? 0,
          lines: svg?.querySelectorAll(".mark-line path").length ?? 0,
        };
      }),
      links: [...document.querySelectorAll<HTMLAnchorElement>("a[href]")].map((a) => a.href).filter((h) => !h.includes("#")),
      sections: [...document.querySelectorAll("body > section > h2")].map((h) => h.textContent ?? ""),
    }));
    const interaction = o.interactWith ? await interact(page, o.interactWith) : undefined;
    return { ...drawn, errors, requests, interaction };
  } finally {
    await page.close();
  }
}

function assertRendered(r: Awaited<ReturnType<typeof openReport>>, where: string): void {
  assert.deepEqual(r.errors, [], `${where}: console`);
  assert.deepEqual(
    r.requests.filter((u) => !u.startsWith("file:") && !u.startsWith("data:")),
    [],
    `${where}: requests other than file: and data:`,
  );
  // the experiment's figures: synthesis, SVD analysis, and one loss-curve figure per run
  assert.equal(r.images.length, 5, `${where}: images ${r.images.map((i) => i.alt).join(", ")}`);
  for (const img of r.images) assert.ok(img.width > 0 && img.height > 0, `${where}: image "${img.alt}" not drawn`);
  assert.equal(r.charts.length, 1, `${where}: charts`);
  for (const c of r.charts) {
    assert.ok(c.rendered, `${where}: ${c.id} did not render`);
    assert.ok(c.width > 400 && c.height > 300, `${where}: ${c.id} is ${c.width}×${c.height}`);
    assert.ok(c.lines >= 6, `${where}: ${c.id} draws ${c.lines} lines (raw and EMA per run, held-out per run)`);
  }
  for (const link of r.links) assert.ok(fs.existsSync(fileURLToPath(link)), `${where}: link to a missing file ${link}`);
  assert.ok(r.links.length >= 9, `${where}: ${r.links.length} links`);
}

describe("report.html in headless chromium", () => {
  let browser: Browser;
  const tmp = tempDir("browser");

  before(async () => {
    if (!fs.existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} not found: this test opens report.html in Debian's chromium. Run \`npm run setup\` as root on Debian/Ubuntu ` +
          "(it installs the chromium package), or install Chromium so that it is at that path.",
      );
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
  });

  it("draws every figure and chart from a relative --output-dir, and again after the folder moved", async () => {
    const relative = path.relative(process.cwd(), path.join(tmp, "exp"));
    assert.ok(!path.isAbsolute(relative));
    const { config, L } = await writeSampleExperiment(relative);
    const html = path.resolve(await writeExperimentReport(config, L));

    const first = await openReport(browser, html, { interactWith: "svd" });
    assertRendered(first, "in place");
    assert.deepEqual(first.sections.slice(0, 2), ["Verdict", "Training and held-out loss of every arm"]);
    // picking svd in the legend dims the random and pissa lines (raw and EMA in training, held-out): 6 of them
    const { faintBefore, faintAfter, tooltip } = first.interaction!;
    assert.equal(faintBefore, 0);
    assert.equal(faintAfter, 6);
    assert.match(tooltip, /step\s*\d+/);
    assert.match(tooltip, /random \(EMA\)\s*\d\.\d{4}/);

    const moved = path.join(tmp, "elsewhere", "copy");
    fs.cpSync(path.dirname(html), moved, { recursive: true });
    fs.rmSync(path.dirname(html), { recursive: true });
    const second = await openReport(browser, path.join(moved, "report.html"));
    assertRendered(second, "after the move");
    for (const link of second.links) assert.ok(fileURLToPath(link).startsWith(moved), `${link} points outside the moved folder`);
  });
});
