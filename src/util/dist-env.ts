// Where this process stands in a multi-process run, from the environment a launcher sets
// (torchrun, srun, svdlora's own launcher). Plain values only: the CLI reads them before any
// tensor library is loaded.

/** What a launcher (torchrun, launchWorkers) tells each process, read by fromEnv(). */
export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

function fail(message: string): never {
  throw new Error(`distributed: ${message}`);
}

function whole(name: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = value.trim();
  if (!/^\d+$/.test(v)) fail(`${name}=${JSON.stringify(value)} is not a whole number`);
  const n = Number(v);
  if (n < min) fail(`${name}=${n} must be at least ${min}`);
  if (n > max) fail(`${name}=${n} must be at most ${max}`);
  return n;
}

/**
 * The process's place in a multi-process run, from the variables torchrun (and launchWorkers)
 * set: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; without RANK and
 * WORLD_SIZE, from those srun sets for each of several tasks (SLURM_PROCID, SLURM_NTASKS,
 * SLURM_LOCALID, SLURM_NTASKS_PER_NODE), with MASTER_ADDR and MASTER_PORT from the batch script.
 * Null for a plain single-process run. Throws one line for bad or missing values.
 */
export function fromEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  const set = (name: string) => env[name] !== undefined && env[name] !== "";
  if (!set("RANK") && !set("WORLD_SIZE")) return slurmEnv(env);
  if (!set("RANK")) fail("WORLD_SIZE is set but RANK is not (a launcher sets both)");
  if (!set("WORLD_SIZE")) fail("RANK is set but WORLD_SIZE is not (a launcher sets both)");
  const worldSize = whole("WORLD_SIZE", env.WORLD_SIZE!, 1);
  const rank = whole("RANK", env.RANK!, 0);
  if (rank >= worldSize) fail(`RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const localWorldSize = set("LOCAL_WORLD_SIZE") ? whole("LOCAL_WORLD_SIZE", env.LOCAL_WORLD_SIZE!, 1, worldSize) : worldSize;
  const localRank = set("LOCAL_RANK") ? whole("LOCAL_RANK", env.LOCAL_RANK!, 0) : rank % localWorldSize;
  if (localRank >= localWorldSize) fail(`LOCAL_RANK=${localRank} is not below LOCAL_WORLD_SIZE=${localWorldSize}`);
  return { rank, worldSize, localRank, localWorldSize, ...master(env, worldSize, `WORLD_SIZE=${worldSize}`, "") };
}

// srun's variables for one of several tasks (a single task is a plain run).
function slurmEnv(env: NodeJS.ProcessEnv): DistEnv | null {
  const { SLURM_PROCID: procId, SLURM_NTASKS: tasks } = env;
  if (!procId || !tasks) return null;
  const worldSize = whole("SLURM_NTASKS", tasks, 1);
  if (worldSize === 1) return null;
  const rank = whole("SLURM_PROCID", procId, 0);
  if (rank >= worldSize) fail(`SLURM_PROCID=${rank} is not below SLURM_NTASKS=${worldSize}`);
  // "4" or "4(x2)": tasks on each machine (the first machine's when they differ).
  const perNode = env.SLURM_NTASKS_PER_NODE || /^\d+/.exec(env.SLURM_STEP_TASKS_PER_NODE || env.SLURM_TASKS_PER_NODE || "")?.[0];
  const localWorldSize = perNode ? whole("SLURM_NTASKS_PER_NODE", perNode, 1, worldSize) : worldSize;
  const localRank = env.SLURM_LOCALID ? whole("SLURM_LOCALID", env.SLURM_LOCALID, 0) : rank % localWorldSize;
  if (localRank >= localWorldSize) fail(`SLURM_LOCALID=${localRank} is not below the ${localWorldSize} tasks per machine`);
  const hint =
    ': in the batch script, export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) and MASTER_PORT=<a free port>';
  return { rank, worldSize, localRank, localWorldSize, ...master(env, worldSize, `SLURM_NTASKS=${worldSize}`, hint) };
}

// Rank 0's store address; one process alone needs none (torch's defaults then).
function master(env: NodeJS.ProcessEnv, worldSize: number, what: string, hint: string): { masterAddr: string; masterPort: number } {
  const single = worldSize === 1;
  if (!env.MASTER_ADDR && !single) fail(`MASTER_ADDR is not set (${what} needs the address of rank 0${hint})`);
  if (!env.MASTER_PORT && !single) fail(`MASTER_PORT is not set (${what} needs the port of rank 0's store${hint})`);
  const masterAddr = (env.MASTER_ADDR ?? "127.0.0.1").trim() || "127.0.0.1";
  if (/\s/.test(masterAddr)) fail(`MASTER_ADDR=${JSON.stringify(env.MASTER_ADDR)} is not a host name or address`);
  const masterPort = env.MASTER_PORT ? whole("MASTER_PORT", env.MASTER_PORT, 1, 65535) : 29500;
  return { masterAddr, masterPort };
}
