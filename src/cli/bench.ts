// `svdlora bench`: LoRA training speed, peak memory and MFU on this machine for the given model and
// settings, beside the PEFT reference when Python has peft (pipeline/bench.ts).
import path from "node:path";
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import type { BenchResult, SideResult } from "../pipeline/bench.js";
import { BENCH, type BenchSettings } from "../pipeline/settings.js";
import { withInterrupts } from "./interrupt.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, checkDevice, givenSettings, withFlagNames } from "./settings.js";

export function registerBench(program: Command, cli: Cli): void {
  const cmd = program
    .command("bench")
    .description(
      "measure LoRA training on this machine (real tokens/s, peak memory, MFU) on a synthetic workload or your data, beside PEFT when Python has it",
    )
    .option("--json", "print the result as JSON");
  addSettingFlags(cmd, BENCH).action(async () => {
    const given = givenSettings(cmd, BENCH) as Partial<BenchSettings>;
    await checkDevice(cmd, given.device);
    if (given.baseModel !== undefined) given.baseModel = await resolveBaseModel(given.baseModel);
    const { benchRun } = await import("../pipeline/bench.js");
    const { terminalEvents } = await import("./progress.js");
    const quiet = Boolean(given.quiet);
    const events = terminalEvents(cli.io.stderr, { quiet });
    const log = (line: string) => {
      if (!quiet) println(cli.io.stderr, line);
    };
    const r = await withInterrupts(cli.io, (signal) => benchRun(given, { signal, events, log }));
    println(cli.io.stdout, cmd.opts().json ? JSON.stringify(r, null, 2) : renderBench(r));
  });
}

const integer = (x: number) => Math.round(x).toLocaleString("en-US");
const memory = (s: SideResult) => `${s.peakMemoryGiB.toFixed(2)} GiB ${s.memoryKind === "cuda allocated" ? "" : "(host RSS)"}`.trim();
const mfu = (s: SideResult) => (s.mfuPercent === null ? "n/a" : `${s.mfuPercent.toFixed(1)} %`);

/** The result as a few lines: what was measured, one row per side, the ratio, and why a figure is missing. */
export function renderBench(r: BenchResult): string {
  const model = path.relative(process.cwd(), r.model.dir) || r.model.dir;
  const lines = [
    `svdlora bench: ${model} (${r.model.layers} layers) on ${r.deviceName === "cpu" ? "cpu" : `${r.device} (${r.deviceName})`}, ${r.dtype}; ` +
      `LoRA r = ${r.lora.rank} on ${r.lora.targets.join(",")}; batch ${r.batchSize}, ${r.steps} steps timed after ${r.warmupSteps} warm-up steps`,
    `samples: ${r.trainData === null ? "synthetic, 150–600 random tokens" : path.relative(process.cwd(), r.trainData) || r.trainData} (${Math.round(r.meanSampleTokens)} tokens on average)`,
  ];
  const rows: [string, SideResult][] = [[`svdlora (checkpointing ${r.svdlora.gradientCheckpointing})`, r.svdlora]];
  if (r.peft && "realTokensPerSecond" in r.peft) rows.push([`PEFT (checkpointing ${r.peft.gradientCheckpointing ? "on" : "off"})`, r.peft]);
  const table = [
    ["", "real tok/s", "peak memory", `MFU (${r.flopsPerToken})`],
    ...rows.map(([name, s]) => [name, integer(s.realTokensPerSecond), memory(s), mfu(s)]),
  ];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  for (const row of table) lines.push(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("   "));
  if (r.svdlora.recomputedLayersPerStep > 0)
    lines.push(
      `svdlora recomputed ${r.svdlora.recomputedLayersPerStep.toFixed(1)} of ${r.model.layers} layers per step to fit the memory budget`,
    );
  if (r.ratio !== null) lines.push(`svdlora / PEFT: ${r.ratio.toFixed(2)}× the real tokens per second`);
  if (r.peft && "skipped" in r.peft) lines.push(`PEFT reference skipped: ${withFlagNames(r.peft.skipped, BENCH)}`);
  if (r.peft && "error" in r.peft) lines.push(`PEFT reference failed: ${r.peft.error}`);
  if (r.peakTflops === null) lines.push("MFU needs the device's peak: give --peak-tflops (its dense TFLOP/s in this dtype)");
  else
    lines.push(
      `MFU counts ${r.flopsPerToken} FLOPs per real token (N = ${integer(r.model.matmulWeights)} weights in matrix products) against ${r.peakTflops} TFLOP/s${r.peakSource === "known card" ? ` (${r.deviceName}'s dense peak)` : ""}`,
    );
  return lines.join("\n");
}
