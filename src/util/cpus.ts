// How many CPU cores this process may compute on.
import { readFileSync } from "node:fs";
import os from "node:os";

/**
 * The physical cores among the CPUs this process may run on (its affinity, as taskset sets it):
 * the hyper-threads of one core count once, as PyTorch counts cores for its default thread count.
 * Read from Linux's /proc and /sys; elsewhere, or where those are not readable, the logical CPUs
 * Node reports (os.availableParallelism()).
 */
export function physicalCores(): number {
  try {
    const allowed = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    if (allowed) {
      const cores = new Set(
        cpuList(allowed).map((cpu) => readFileSync(`/sys/devices/system/cpu/cpu${cpu}/topology/thread_siblings_list`, "utf8").trim()),
      );
      if (cores.size > 0) return cores.size;
    }
  } catch {
    // not Linux, or a sandbox that hides the CPU topology
  }
  return os.availableParallelism();
}

/** Linux's CPU list format: "0-3,8,10-11" → [0, 1, 2, 3, 8, 10, 11]. */
export function cpuList(list: string): number[] {
  return list.split(",").flatMap((range) => {
    const [first, last = first] = range.split("-").map(Number);
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  });
}
