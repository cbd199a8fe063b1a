// A model's weights as HF stores them: one model.safetensors, or shards listed in
// model.safetensors.index.json (`weight_map`: tensor name → shard file). All shard headers are
// validated on open; tensors are read lazily.
import * as fs from "node:fs";
import * as path from "node:path";
import type { Device, Tensor } from "../torch/index.js";
import { displayPath, readInputText } from "../util/files.js";
import { SafetensorsFile, type TensorEntry } from "./safetensors.js";

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

export class SafetensorsCheckpoint {
  private constructor(
    readonly dir: string,
    private readonly files: Map<string, SafetensorsFile>,
    private readonly fileOf: Map<string, SafetensorsFile>,
  ) {}

  /** Opens the weights in a model directory (sharded or not). */
  static open(dir: string): SafetensorsCheckpoint {
    const indexPath = path.join(dir, INDEX_FILE);
    if (fs.existsSync(indexPath)) return SafetensorsCheckpoint.openSharded(dir, indexPath);
    const single = path.join(dir, SINGLE_FILE);
    if (fs.existsSync(single)) {
      const file = SafetensorsFile.open(single);
      return new SafetensorsCheckpoint(dir, new Map([[SINGLE_FILE, file]]), new Map(file.keys().map((k) => [k, file])));
    }
    if (fs.existsSync(path.join(dir, "pytorch_model.bin")) || fs.existsSync(path.join(dir, "pytorch_model.bin.index.json"))) {
      throw new Error(
        `${displayPath(dir)}: only PyTorch pickle weights (pytorch_model.bin) found; svdlora reads safetensors — convert them (e.g. load and save_pretrained(safe_serialization=True) in transformers)`,
      );
    }
    throw new Error(`${displayPath(dir)}: no ${SINGLE_FILE} or ${INDEX_FILE} found; is this a Hugging Face model directory?`);
  }

  /** Tensor names (in weight_map order when sharded, data order otherwise). */
  keys(): string[] {
    return [...this.fileOf.keys()];
  }

  has(name: string): boolean {
    return this.fileOf.has(name);
  }

  entry(name: string): TensorEntry & { file: string } {
    const file = this.fileFor(name);
    return { ...file.entry(name), file: file.path };
  }

  /** One tensor, in the checkpoint's dtype, on the CPU or read straight to `o.device`. */
  read(name: string, o: { device?: Device } = {}): Tensor {
    return this.fileFor(name).read(name, o);
  }

  /** One weight, read as `read` does, refusing a dtype that is not floating point and NaN or infinite values (SafetensorsFile.readWeight). */
  readWeight(name: string, o: { device?: Device } = {}): Tensor {
    return this.fileFor(name).readWeight(name, o);
  }

  close(): void {
    for (const file of this.files.values()) file.close();
  }

  private static openSharded(dir: string, indexPath: string): SafetensorsCheckpoint {
    const weightMap = readWeightMap(indexPath);
    const files = new Map<string, SafetensorsFile>();
    const fileOf = new Map<string, SafetensorsFile>();
    try {
      for (const [name, shard] of Object.entries(weightMap)) {
        let file = files.get(shard);
        if (!file) {
          const shardPath = path.join(dir, shard);
          if (!fs.existsSync(shardPath))
            throw new Error(
              `${displayPath(indexPath)}: shard ${JSON.stringify(shard)} is listed but missing from ${displayPath(dir)} (incomplete download?)`,
            );
          file = SafetensorsFile.open(shardPath);
          files.set(shard, file);
        }
        if (!file.has(name))
          throw new Error(`${displayPath(indexPath)}: tensor ${JSON.stringify(name)} is mapped to ${shard}, which does not contain it`);
        fileOf.set(name, file);
      }
    } catch (error) {
      for (const file of files.values()) file.close();
      throw error;
    }
    return new SafetensorsCheckpoint(dir, files, fileOf);
  }

  private fileFor(name: string): SafetensorsFile {
    const file = this.fileOf.get(name);
    if (!file) throw new Error(`${displayPath(this.dir)}: the checkpoint has no tensor named ${JSON.stringify(name)}`);
    return file;
  }
}

function readWeightMap(indexPath: string): Record<string, string> {
  const text = readInputText(indexPath, "checkpoint index", 256 << 20);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${displayPath(indexPath)}: not valid JSON (${(error as Error).message.replace(/\s+/g, " ").slice(0, 200)})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(`${displayPath(indexPath)}: no "weight_map" object (tensor name → shard file)`);
  }
  for (const [name, shard] of Object.entries(weightMap)) {
    // shards live next to the index; a path elsewhere is a damaged or hostile index
    if (typeof shard !== "string" || shard === "" || shard !== path.basename(shard) || shard === "." || shard === "..") {
      throw new Error(
        `${displayPath(indexPath)}: tensor ${JSON.stringify(name)} maps to ${JSON.stringify(shard)}, not a file name in the same directory`,
      );
    }
  }
  return weightMap as Record<string, string>;
}
