// `svdlora info`: what this installation runs on.
import os from "node:os";
import type { Command } from "commander";
import * as torch from "../torch/index.js";
import { packageVersion } from "../version.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";

export function systemInfo() {
  const b = torch.buildInfo();
  return {
    svdlora: packageVersion(),
    node: process.version,
    libtorch: b.torchVersion,
    build: { cuda: b.builtWithCuda, cxx11Abi: b.cxx11Abi, mkl: b.mkl, lapack: b.lapack },
    cpu: { model: os.cpus()[0]?.model ?? "unknown", cores: os.cpus().length, torchThreads: torch.getNumThreads() },
    cuda: { available: b.cudaAvailable, devices: b.builtWithCuda && b.cudaAvailable ? torch.cuda.devices() : [] },
  };
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

export function registerInfo(program: Command, cli: Cli): void {
  program
    .command("info")
    .description("versions, build flags, CPU threads and CUDA devices")
    .option("--json", "print as JSON")
    .action((opts: { json?: boolean }) => {
      const i = systemInfo();
      if (opts.json) {
        println(cli.io.stdout, JSON.stringify(i, null, 2));
        return;
      }
      const lines = [
        `svdlora   ${i.svdlora}`,
        `node      ${i.node}`,
        `libtorch  ${i.libtorch} (CUDA build: ${i.build.cuda ? "yes" : "no"}, C++11 ABI: ${i.build.cxx11Abi ? "yes" : "no"}, ` +
          `LAPACK: ${i.build.lapack ? "yes" : "no"}, MKL: ${i.build.mkl ? "yes" : "no"})`,
        `cpu       ${i.cpu.model}, ${i.cpu.cores} cores, ${i.cpu.torchThreads} torch threads`,
      ];
      if (i.cuda.devices.length === 0) lines.push(`cuda      ${i.build.cuda ? "no device visible" : "not in this build"}`);
      for (const d of i.cuda.devices)
        lines.push(`cuda:${d.index}    ${d.name}, ${gib(d.totalMemory)}, compute capability ${d.capability}, ${d.multiProcessors} SMs`);
      println(cli.io.stdout, lines.join("\n"));
    });
}
