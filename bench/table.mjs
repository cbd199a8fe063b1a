// The 7B LoRA benchmark's lines (bench/run-lora7b.sh, or any JSONL of scripts/bench_peft.py and
// dist/bench/lora-7b.js lines) as a markdown table, each run's real tokens/s also as a ratio to
// PEFT with gradient checkpointing on the same targets; writes <date>-<gpu>-lora7b.json (every
// line, the versions) and .md (the table) into the output directory.
//   node bench/table.mjs FILE.jsonl [--out DIR] [--date YYYY-MM-DD] [--no-write]
// DIR defaults to $OUT when set, else bench/results. Lines: {"kind":"versions",…} (gpu, torch,
// transformers, peft, …, date); PEFT runs (no "side"; targets, grad_ckpt, real_tokens_per_s,
// peak_mem_gib, gpu); svdlora runs ("side":"svdlora", targets, budget_gib, …); a failed run has
// "error" instead of the numbers. Blank lines and lines that are not JSON objects are skipped.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/** Splits JSONL text into the versions line and the run lines (in file order). */
export function parseLines(text) {
  let versions = null;
  const runs = [];
  let skipped = 0;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    let v;
    try {
      v = JSON.parse(line);
    } catch {
      skipped++;
      continue;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) skipped++;
    else if (v.kind === "versions") versions = { ...versions, ...v };
    else runs.push({ ...v, side: v.side ?? "peft" });
  }
  return { versions, runs, skipped };
}

const targetsOf = (r) => (Array.isArray(r.targets) ? r.targets : typeof r.targets === "string" ? r.targets.split(",") : []);
const targetKey = (r) => [...targetsOf(r)].sort().join(",");
export function targetLabel(r) {
  const t = targetsOf(r);
  if (t.length === ALL_SEVEN.length && ALL_SEVEN.every((x) => t.includes(x))) return "all 7";
  return t.map((x) => x.replace(/_proj$/, "")).join(", ") || "?";
}

const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const ok = (r) => !r.error && isNum(r.real_tokens_per_s);

function setting(r) {
  const parts = [];
  if (r.side === "peft") parts.push(r.grad_ckpt === false ? "GC off" : r.grad_ckpt === true ? "GC on" : "GC ?");
  else {
    parts.push(isNum(r.budget_gib) ? `budget ${r.budget_gib} GiB` : "no budget");
    if (typeof r.grad_ckpt === "boolean") parts.push(r.grad_ckpt ? "GC on" : "GC off");
    if (typeof r.checkpointing === "string") parts.push(`checkpointing ${r.checkpointing}`);
    if (isNum(r.recomputed_layers_per_step)) parts.push(`${r.recomputed_layers_per_step} layers recomputed/step`);
  }
  return parts.join(", ");
}

/** The rows in table order: by targets (first seen first), PEFT before svdlora, GC on first, budgets ascending. */
export function orderRuns(runs) {
  const groups = [];
  for (const r of runs) if (!groups.includes(targetKey(r))) groups.push(targetKey(r));
  const rank = (r) => [
    groups.indexOf(targetKey(r)),
    r.side === "peft" ? 0 : 1,
    r.grad_ckpt === false ? 1 : 0,
    isNum(r.budget_gib) ? r.budget_gib : Infinity,
  ];
  return runs
    .map((r, i) => ({ r, i }))
    .sort((a, b) => {
      const x = rank(a.r),
        y = rank(b.r);
      for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) return x[k] < y[k] ? -1 : 1;
      return a.i - b.i;
    })
    .map(({ r }) => r);
}

/** PEFT with gradient checkpointing for each target set: the reference of the ratio column. */
function references(runs) {
  const ref = new Map();
  for (const r of runs) if (r.side === "peft" && r.grad_ckpt !== false && ok(r) && !ref.has(targetKey(r))) ref.set(targetKey(r), r);
  return ref;
}

const fmtInt = (x) => (isNum(x) ? Math.round(x).toLocaleString("en-US") : "—");
const fmt2 = (x) => (isNum(x) ? x.toFixed(2) : "—");
const cell = (s) => String(s).replace(/\|/g, "\\|").replace(/\s+/g, " ");

export function gpuName(versions, runs) {
  return versions?.gpu ?? runs.find((r) => typeof r.gpu === "string")?.gpu ?? "unknown GPU";
}
export function gpuSlug(name) {
  return (
    name
      .toLowerCase()
      .replace(/nvidia/g, "")
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "") || "gpu"
  );
}

/** The markdown: a header (GPU, versions, date) and one row per run. */
export function markdown({ versions, runs }, date) {
  const ordered = orderRuns(runs);
  const ref = references(runs);
  const v = versions ?? {};
  const lines = [];
  lines.push("## LoRA training on the Qwen2.5-Math-7B architecture: svdlora vs PEFT", "");
  lines.push(`GPU: ${gpuName(versions, runs)} · date: ${v.date ?? date}`);
  const stack = [
    ["torch", v.torch],
    ["CUDA", v.cuda],
    ["transformers", v.transformers],
    ["peft", v.peft],
    ["python", v.python],
    ["node", v.node],
    ["svdlora libtorch", v.libtorch],
    ["commit", v.commit],
  ].filter(([, x]) => x);
  lines.push(`Versions: ${stack.length ? stack.map(([k, x]) => `${k} ${x}`).join(" · ") : "not recorded"}`);
  if (v.alloc_conf !== undefined) lines.push(`PYTORCH_CUDA_ALLOC_CONF: ${v.alloc_conf || "unset"} (both sides)`);
  lines.push(
    "r = 16, α = 16, batch 4, 81 samples of 150–600 tokens, AdamW lr 2e-4, random bf16 weights; real tok/s counts tokens without padding.",
    "",
  );
  lines.push("| side | targets | checkpointing / budget | real tok/s | peak GiB | vs PEFT + GC, same targets | note |");
  lines.push("|---|---|---|---:|---:|---:|---|");
  for (const r of ordered) {
    const base = ref.get(targetKey(r));
    const ratio = ok(r) && base ? `${(r.real_tokens_per_s / base.real_tokens_per_s).toFixed(2)}×` : "—";
    const notes = [];
    if (r.error) notes.push(`error: ${String(r.error).slice(0, 160)}`);
    if (ok(r) && isNum(r.budget_gib) && isNum(r.peak_mem_gib) && r.peak_mem_gib > r.budget_gib)
      notes.push(`peak over the ${r.budget_gib} GiB budget`);
    if (isNum(r.layers) && r.layers !== 28) notes.push(`${r.layers} layers`);
    if (r.packing !== undefined && r.packing !== null && r.packing !== false)
      notes.push(`packing ${r.packing === true ? "on" : r.packing}`);
    lines.push(
      `| ${cell(r.side)} | ${cell(targetLabel(r))} | ${cell(setting(r))} | ${fmtInt(r.real_tokens_per_s)} | ${fmt2(r.peak_mem_gib)} | ${ratio} | ${cell(notes.join("; "))} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

function main(argv) {
  const args = [...argv];
  const take = (name) => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const [, value] = args.splice(i, 2);
    if (value === undefined) throw new Error(`${name} needs a value`);
    return value;
  };
  const noWrite = args.includes("--no-write");
  if (noWrite) args.splice(args.indexOf("--no-write"), 1);
  const outDir = take("--out") ?? (process.env.OUT || "bench/results");
  const dateArg = take("--date");
  const [file] = args;
  if (!file || args.length !== 1) {
    console.error("usage: node bench/table.mjs FILE.jsonl [--out DIR] [--date YYYY-MM-DD] [--no-write]");
    return 2;
  }
  const parsed = parseLines(fs.readFileSync(file, "utf8"));
  if (parsed.skipped) console.error(`table.mjs: skipped ${parsed.skipped} line(s) of ${file} that are not JSON objects`);
  if (!parsed.runs.length) {
    console.error(`table.mjs: ${file} has no run lines`);
    return 1;
  }
  const date = dateArg ?? parsed.versions?.date?.slice(0, 10) ?? new Date().toISOString().slice(0, 10);
  const md = markdown(parsed, date);
  process.stdout.write(md);
  if (!noWrite) {
    fs.mkdirSync(outDir, { recursive: true });
    const base = path.join(outDir, `${date}-${gpuSlug(gpuName(parsed.versions, parsed.runs))}-lora7b`);
    fs.writeFileSync(
      `${base}.json`,
      `${JSON.stringify({ versions: parsed.versions, runs: parsed.runs, source: path.basename(file) }, null, 2)}\n`,
    );
    fs.writeFileSync(`${base}.md`, md);
    console.error(`table.mjs: wrote ${base}.json and ${base}.md`);
  }
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
