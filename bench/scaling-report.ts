// The table and the figure of the scaling bench (bench/scaling.ts) from its JSONL: real tokens/s
// and peak memory of svdlora, PEFT with gradient checkpointing and PEFT without, against tokens per
// step (the 7B architecture) and against model size (at 4k tokens per step), and where each side
// ran out of memory. Redraws anywhere, no GPU needed:
//   node dist/bench/scaling-report.js FILE.jsonl [--out DIR]     (DIR: beside FILE by default)
// writes <date>-<gpu>-scaling.md and .png (and .svg) into DIR.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { saveChart, type TopLevelSpec } from "../src/report/index.js";
import { CATEGORY_COLORS, chartConfig } from "../src/report/chart-theme.js";

export const SIDES = ["svdlora", "PEFT + checkpointing", "PEFT, no checkpointing"] as const;
export type Side = (typeof SIDES)[number];

export interface ScalingPoint {
  size: string;
  targetTokens: number;
  side: Side;
  batchSize: number;
  realTokensPerSecond: number | null;
  peakGiB: number | null;
  tokensPerStep: number | null;
  recomputedLayersPerStep: number | null;
  /** Why there is no figure ("out of memory: …", "not measured: timed out …"). */
  error: string | null;
}

export interface ScalingLines {
  versions: Record<string, unknown>;
  points: ScalingPoint[];
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** The JSONL's versions line and points (other lines and lines that are not JSON are skipped). */
export function parseScaling(text: string): ScalingLines {
  let versions: Record<string, unknown> = {};
  const points: ScalingPoint[] = [];
  for (const raw of text.split("\n")) {
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(raw);
    } catch {
      continue;
    }
    if (v?.kind === "versions") versions = v;
    if (v?.kind !== "point") continue;
    const side: Side = v.side === "svdlora" ? "svdlora" : v.grad_ckpt ? "PEFT + checkpointing" : "PEFT, no checkpointing";
    const error = typeof v.error === "string" ? v.error : null;
    points.push({
      size: String(v.size),
      targetTokens: Number(v.target_tokens),
      side,
      batchSize: Number(v.batch_size),
      realTokensPerSecond: error ? null : num(v.real_tokens_per_s),
      peakGiB: error ? null : num(v.peak_mem_gib),
      tokensPerStep: error ? null : num(v.tokens_per_step),
      recomputedLayersPerStep: num(v.recomputed_layers_per_step),
      error,
    });
  }
  return { versions, points };
}

const SIZE_ORDER = ["0.5B", "1.5B", "7B", "14B"];
const bySize = (a: string, b: string) => SIZE_ORDER.indexOf(a) - SIZE_ORDER.indexOf(b);
const tokensLabel = (t: number) => `${Math.round(t / 1024)}k`;
const outOfMemory = (p: ScalingPoint) => p.error !== null && /out of memory/i.test(p.error);

/** The tokens series runs on the size with several tokens-per-step points; the size series at the tokens every size has. */
export function series(points: ScalingPoint[]): { model: string | null; tokens: number | null } {
  const tokensBySize = new Map<string, Set<number>>();
  for (const p of points) tokensBySize.set(p.size, (tokensBySize.get(p.size) ?? new Set()).add(p.targetTokens));
  const model = [...tokensBySize].sort((a, b) => b[1].size - a[1].size)[0]?.[0] ?? null;
  const common = [...(tokensBySize.values().next().value ?? [])].filter((t) => [...tokensBySize.values()].every((s) => s.has(t)));
  return { model, tokens: common[0] ?? null };
}

function cell(p: ScalingPoint | undefined): string {
  if (!p) return "—";
  if (p.error) return outOfMemory(p) ? "out of memory" : `failed (${p.error.replace(/\|/g, "/").slice(0, 80)})`;
  const recomputed = p.recomputedLayersPerStep ? `, ${p.recomputedLayersPerStep} layers recomputed` : "";
  return `${Math.round(p.realTokensPerSecond!).toLocaleString("en-US")} tok/s · ${p.peakGiB!.toFixed(1)} GiB${recomputed}`;
}

function ratio(points: ScalingPoint[]): string {
  const [ours, peft] = [points.find((p) => p.side === "svdlora"), points.find((p) => p.side === "PEFT + checkpointing")];
  if (!ours?.realTokensPerSecond || !peft?.realTokensPerSecond) return "—";
  return `${(ours.realTokensPerSecond / peft.realTokensPerSecond).toFixed(2)}×`;
}

/** Where each side first ran out of memory along each series, and the points it has no figure for otherwise, in words. */
export function memoryLimits(points: ScalingPoint[]): string[] {
  const s = series(points);
  return SIDES.map((side) => {
    const failed = points
      .filter((p) => p.side === side && p.error && !outOfMemory(p))
      .map((p) => `${p.size} at ${tokensLabel(p.targetTokens)} tokens per step`);
    const along = (rows: ScalingPoint[], what: (p: ScalingPoint) => string) => {
      const first = rows.find((p) => p.side === side && outOfMemory(p));
      return first ? what(first) : null;
    };
    const tokens = along(
      points.filter((p) => p.size === s.model).sort((a, b) => a.targetTokens - b.targetTokens),
      (p) => `from ${tokensLabel(p.targetTokens)} tokens per step on ${p.size}`,
    );
    const sizes = along(
      points.filter((p) => p.targetTokens === s.tokens).sort((a, b) => bySize(a.size, b.size)),
      (p) => `from ${p.size} at ${tokensLabel(p.targetTokens)} tokens per step`,
    );
    const where = [tokens, sizes].filter(Boolean);
    const fit = where.length ? `out of memory ${where.join(", and ")}` : `fit at every point${failed.length ? " measured" : ""}`;
    return `${side}: ${fit}${failed.length ? `; not measured (failed): ${failed.join(", ")}` : ""}`;
  });
}

/** The markdown: what was run, the two tables, where each side stops fitting. */
export function scalingMarkdown({ versions: v, points }: ScalingLines): string {
  const s = series(points);
  const row = (label: string, rows: ScalingPoint[]) =>
    `| ${label} | ${rows[0]?.batchSize ?? "—"} | ${SIDES.map((side) => cell(rows.find((p) => p.side === side))).join(" | ")} | ${ratio(rows)} |`;
  const head = `| ${"%s"} | samples per step | ${SIDES.join(" | ")} | svdlora ÷ PEFT + checkpointing |\n|---|---:|---|---|---|---:|`;
  const lines = [
    `# How the cost of a LoRA step grows: svdlora beside PEFT`,
    "",
    `${v.gpu ?? "GPU not recorded"}${v.gpu_memory_gib ? ` (${v.gpu_memory_gib} GiB)` : ""}; ${v.date ?? "date not recorded"}; torch ${v.torch ?? "?"}, transformers ${v.transformers ?? "?"}, peft ${v.peft ?? "?"}, libtorch ${v.libtorch ?? "?"} (svdlora), node ${v.node ?? "?"}, commit ${v.commit ?? "?"}.`,
    "Random bf16 weights, LoRA r = 16 on q_proj and v_proj, samples of 150–600 tokens: svdlora packs a step's samples into one row (its default), PEFT pads them to the longest. Real tokens exclude padding; peak memory is the most allocated at once (torch.cuda.max_memory_allocated, weights included). svdlora runs with `--gradient-checkpointing auto` (layers recomputed only when memory needs it).",
    "",
  ];
  if (s.model) {
    lines.push(`## Against tokens per step (${s.model})`, "", head.replace("%s", "tokens per step"));
    for (const t of [...new Set(points.filter((p) => p.size === s.model).map((p) => p.targetTokens))].sort((a, b) => a - b))
      lines.push(
        row(
          `~${tokensLabel(t)}`,
          points.filter((p) => p.size === s.model && p.targetTokens === t),
        ),
      );
    lines.push("");
  }
  if (s.tokens !== null) {
    lines.push(`## Against model size (~${tokensLabel(s.tokens)} tokens per step)`, "", head.replace("%s", "model"));
    for (const size of [...new Set(points.filter((p) => p.targetTokens === s.tokens).map((p) => p.size))].sort(bySize))
      lines.push(
        row(
          size,
          points.filter((p) => p.size === size && p.targetTokens === s.tokens),
        ),
      );
    lines.push("");
  }
  lines.push("## Where each side stops fitting", "", ...memoryLimits(points).map((l) => `- ${l}`), "");
  return lines.join("\n");
}

/** Where an out-of-memory cross is drawn: `top` for the first side, 6 % of it higher for each next one. */
const oomHeight = (top: number, side: Side) => top * (1 + 0.06 * SIDES.indexOf(side));

/** The figure: tokens/s (top, log scale) and peak memory (bottom), against tokens per step (left) and model size (right); crosses mark out of memory. */
export function scalingChart({ versions: v, points }: ScalingLines): TopLevelSpec {
  const s = series(points);
  const card = num(v.gpu_memory_gib);
  const rows = points.map((p) => ({
    ...p,
    tokens: p.targetTokens,
    oom: outOfMemory(p),
    // an out-of-memory point is drawn from the card's memory (or the highest peak seen) up, each side a
    // step higher than the one before it: above every measured point, and not hiding each other
    memory: p.peakGiB ?? (outOfMemory(p) ? oomHeight(card ?? Math.max(0, ...points.map((q) => q.peakGiB ?? 0)), p.side) : null),
  }));
  const color = {
    field: "side",
    type: "nominal",
    title: null,
    scale: { domain: [...SIDES], range: CATEGORY_COLORS.slice(0, 3) },
    legend: { orient: "top" },
  } as const;
  const panel = (title: string, filter: (r: (typeof rows)[number]) => boolean, x: object, y: "realTokensPerSecond" | "memory") => {
    const data = rows.filter(filter);
    const yTitle = y === "memory" ? "peak memory (GiB)" : "real tokens / s";
    const measured = data.filter((r) => !r.oom && r[y] !== null);
    return {
      title: { text: title, fontSize: 14, anchor: "start" },
      width: 380,
      height: 240,
      layer: [
        {
          data: { values: measured },
          mark: { type: "line", point: { size: 60, filled: true } },
          encoding: {
            x,
            y: { field: y, type: "quantitative", title: yTitle, scale: y === "memory" ? { zero: true } : { type: "log" } },
            color,
          },
        },
        ...(y === "memory"
          ? [
              {
                data: { values: data.filter((r) => r.oom) },
                mark: { type: "point", shape: "cross", size: 160, strokeWidth: 3, filled: true },
                encoding: { x, y: { field: "memory", type: "quantitative" }, color },
              },
              ...(card
                ? [
                    {
                      data: { values: [{ card }] },
                      mark: { type: "rule", strokeDash: [6, 4], color: "#7f7f7f" },
                      encoding: { y: { field: "card", type: "quantitative" } },
                    },
                  ]
                : []),
            ]
          : []),
      ],
    };
  };
  const xTokens = {
    field: "tokens",
    type: "quantitative",
    title: "tokens per step",
    scale: { type: "log", base: 2 },
    axis: { values: [...new Set(rows.map((r) => r.tokens))], labelExpr: "round(datum.value / 1024) + 'k'" },
  };
  const xSize = {
    field: "size",
    type: "ordinal",
    title: `model (~${s.tokens ? tokensLabel(s.tokens) : "?"} tokens per step)`,
    sort: SIZE_ORDER,
    axis: { labelAngle: 0 },
  };
  const inTokens = (r: (typeof rows)[number]) => r.size === s.model;
  const inSizes = (r: (typeof rows)[number]) => r.targetTokens === s.tokens;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    config: chartConfig,
    title: {
      text: "LoRA step cost: svdlora beside PEFT",
      subtitle: `${v.gpu ?? "GPU not recorded"}; q,v r = 16, random bf16 weights; crosses: out of memory (at or above the card's line, one height per side)${card ? `, dashed: the card's ${card} GiB` : ""}`,
    },
    vconcat: [
      {
        hconcat: [
          panel(`Throughput against tokens per step (${s.model ?? "?"})`, inTokens, xTokens, "realTokensPerSecond"),
          panel("Throughput against model size", inSizes, xSize, "realTokensPerSecond"),
        ],
      },
      {
        hconcat: [
          panel(`Peak memory against tokens per step (${s.model ?? "?"})`, inTokens, xTokens, "memory"),
          panel("Peak memory against model size", inSizes, xSize, "memory"),
        ],
      },
    ],
  } as TopLevelSpec;
}

/** Reads the JSONL, writes <date>-<gpu>-scaling.md and .png (.svg) into outDir; returns their paths. */
export async function writeScalingReport(jsonl: string, outDir = path.dirname(jsonl)): Promise<{ markdown: string; figure: string }> {
  const lines = parseScaling(fs.readFileSync(jsonl, "utf8"));
  if (lines.points.length === 0) throw new Error(`${jsonl}: no points (lines with "kind":"point")`);
  const gpu = String(lines.versions.gpu ?? "gpu")
    .toLowerCase()
    .replace(/^nvidia\s+/, "")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");
  const base = path.join(outDir, `${lines.versions.date ?? new Date().toISOString().slice(0, 10)}-${gpu}-scaling`);
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(`${base}.md`, scalingMarkdown(lines));
  await saveChart(`${base}.png`, scalingChart(lines));
  return { markdown: `${base}.md`, figure: `${base}.png` };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [file, flag, dir] = process.argv.slice(2);
  if (!file || (flag !== undefined && flag !== "--out")) {
    console.error("usage: node dist/bench/scaling-report.js FILE.jsonl [--out DIR]");
    process.exitCode = 2;
  } else {
    const written = await writeScalingReport(file, dir);
    console.log(`${written.markdown}\n${written.figure}`);
  }
}
