// `svdlora info`: what this installation runs on.
import type { Command } from "commander";
import { println } from "./io.js";
import type { Cli } from "./main.js";

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

export function registerInfo(program: Command, cli: Cli): void {
  program
    .command("info")
    .description("versions, build flags, CPU threads and CUDA devices")
    .option("--json", "print as JSON")
    .action(async (opts: { json?: boolean }) => {
      // Imported here, not at start-up; it loads libtorch only where the build's record cannot answer (CUDA).
      const { systemInfo } = await import("../torch/system-info.js");
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
