// Hostile data and config through the real command line (main(), run in this process so the
// suite pays libtorch's start-up once): every bad input gives one clear line on stderr (naming the
// problem, and the file where there is one), a non-zero exit, no stack trace, and no half-written
// files in --output-dir; a sample longer than --max-length is counted, not an error.
// docs/reliability.md lists these cases; SVDLORA_HOSTILE_TABLE=FILE writes their outcomes there
// as markdown rows (how that table was made).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { runCli, sameTree, tempDir, treeFiles } from "../helpers.js";
import { safetensorsBytes } from "../hf/fixtures.js";

const model = new URL("../../../models/tiny-prob/", import.meta.url).pathname;
const trainJson = new URL("../../../data/probability/train.json", import.meta.url).pathname;
const golden = new URL("../../../test/fixtures/golden/", import.meta.url).pathname;
const tmp = tempDir("hostile");
// The commands run in the temp dir, so paths in messages are short and relative.
const home = process.cwd();
process.chdir(tmp);
after(() => process.chdir(home));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const svdlora = (...args: string[]): Promise<Result> => runCli(...args);

function assertOneLineError(r: Result, pattern: RegExp) {
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, pattern);
  // commander may add a hint in parentheses, e.g. "(Did you mean train?)".
  assert.equal(r.stderr.split("\n").filter((l) => !l.startsWith("(")).length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(r.stderr, /^svdlora: /);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
}

/** Files (not directories) under a directory of the temp dir; none when it does not exist. */
function filesUnder(dir: string): string[] {
  const abs = path.join(tmp, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs, { recursive: true })
    .map(String)
    .filter((f) => fs.statSync(path.join(abs, f)).isFile());
}

// ---- fixtures ----

const write = (rel: string, data: string | Uint8Array) => {
  fs.mkdirSync(path.dirname(path.join(tmp, rel)), { recursive: true });
  fs.writeFileSync(path.join(tmp, rel), data);
};

/** A copy of the embedded model: small files copied, model.safetensors linked unless given. */
function modelCopy(
  name: string,
  o: { config?: (c: Record<string, unknown>) => unknown; weights?: Buffer; tokenizerConfig?: (c: Record<string, unknown>) => void } = {},
) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(model)) if (f.endsWith(".json")) fs.copyFileSync(path.join(model, f), path.join(dir, f));
  if (o.weights) fs.writeFileSync(path.join(dir, "model.safetensors"), o.weights);
  else fs.symlinkSync(path.join(model, "model.safetensors"), path.join(dir, "model.safetensors"));
  if (o.config) {
    const c = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    const out = o.config(c);
    if (out === null) fs.rmSync(path.join(dir, "config.json"));
    else fs.writeFileSync(path.join(dir, "config.json"), typeof out === "string" ? out : JSON.stringify(c));
  }
  if (o.tokenizerConfig) {
    const c = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
    o.tokenizerConfig(c);
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(c));
  }
}

/** A safetensors file split into its header (parsed) and data. */
function split(bytes: Buffer): { header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>; data: Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")), data: bytes.subarray(8 + n) };
}

// A rank-4 LoRA adapter for the embedded model (q_proj 256→256, v_proj 256→64, 4 layers), small random factors.
const RANK = 4;
function adapterWeights(layers = [0, 1, 2, 3]): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const l of layers)
    for (const [proj, out] of [
      ["q_proj", 256],
      ["v_proj", 64],
    ] as const)
      for (const [factor, shape] of [
        ["A", [RANK, 256]],
        ["B", [out, RANK]],
      ] as const) {
        const bytes = 4 * shape[0] * shape[1];
        header[`base_model.model.model.layers.${l}.self_attn.${proj}.lora_${factor}.weight`] = {
          dtype: "F32",
          shape,
          data_offsets: [offset, offset + bytes],
        };
        offset += bytes;
      }
  const data = new Float32Array(offset / 4).map(() => (Math.random() - 0.5) * 0.02);
  return safetensorsBytes(JSON.stringify(header), new Uint8Array(data.buffer));
}
const adapterConfig = (r = RANK) =>
  JSON.stringify({
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    r,
    lora_alpha: 8,
    lora_dropout: 0,
    target_modules: ["q_proj", "v_proj"],
    bias: "none",
    base_model_name_or_path: null,
  });

function adapter(name: string, o: { config?: string; weights?: Buffer | null } = {}) {
  write(`${name}/adapter_config.json`, o.config ?? adapterConfig());
  if (o.weights !== null) write(`${name}/adapter_model.safetensors`, o.weights ?? adapterWeights());
}

/** The adapter's weights with the header changed (as an object, or as text). */
function hostileAdapter(name: string, change: (h: ReturnType<typeof split>["header"], keys: string[]) => string | undefined) {
  const { header, data } = split(adapterWeights());
  const keys = Object.keys(header).filter((k) => k !== "__metadata__");
  const text = change(header, keys) ?? JSON.stringify(header);
  adapter(name, { weights: safetensorsBytes(text, data) });
}

/** What the data-loss cases must leave as it was, read before they run. */
const intact = new Map<string, Map<string, Buffer>>();

before(() => {
  // data
  const train = JSON.parse(fs.readFileSync(trainJson, "utf8")) as unknown[];
  write("data/small.json", JSON.stringify(train.slice(0, 4)));
  write("data/empty.json", "");
  write("data/no-items.json", "[]\n");
  write("data/missing-field.json", JSON.stringify([{ question: "What is 1/2 + 1/4?" }]));
  write("data/wrong-type.json", JSON.stringify([{ question: 5, answer: "\\boxed{5}" }]));
  write("data/unknown-fields.json", JSON.stringify([{ text: "a sample" }]));
  write(
    "data/invalid-utf8.json",
    Buffer.concat([Buffer.from('[{"question": "P(A) = '), Buffer.from([0xff, 0xfe]), Buffer.from('?", "answer": "1/2"}]')]),
  );
  write(
    "data/invalid-utf8.jsonl",
    Buffer.concat([
      Buffer.from('{"question": "q", "answer": "1/2"}\n{"question": "'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('", "answer": "1/3"}\n'),
    ]),
  );
  write("data/bad-line.jsonl", '{"question": "q", "answer": "1/2"}\n{"question": "q2", "answer": \n');

  // models
  modelCopy("models/gpt2", { config: (c) => Object.assign(c, { model_type: "gpt2", architectures: ["GPT2LMHeadModel"] }) });
  modelCopy("models/no-hidden-size", { config: (c) => void delete c.hidden_size });
  modelCopy("models/no-model-type", { config: (c) => void delete c.model_type });
  modelCopy("models/string-layers", { config: (c) => Object.assign(c, { num_hidden_layers: "4" }) });
  modelCopy("models/no-config", { config: () => null });
  modelCopy("models/config-not-json", { config: () => '{"model_type": "qwen2",' });
  modelCopy("models/config-vs-weights", { config: (c) => Object.assign(c, { intermediate_size: 512 }) });
  const weights = fs.readFileSync(path.join(model, "model.safetensors"));
  const pastEnd = Buffer.from(weights);
  pastEnd.writeBigUInt64LE(BigInt(weights.length));
  modelCopy("models/st-header-past-end", { weights: pastEnd });
  modelCopy("models/st-header-not-json", { weights: safetensorsBytes("{not json      ", split(weights).data) });
  modelCopy("models/st-truncated", { weights: weights.subarray(0, Math.floor(weights.length / 2)) });
  // the inputs round: NaN in a base weight, a folder as the weights file, a template that asks for 10^8 items
  const nan = Buffer.from(weights);
  const { header } = split(weights);
  const lmHead = header["lm_head.weight"];
  nan.writeFloatLE(Number.NaN, 8 + Number(weights.readBigUInt64LE(0)) + lmHead.data_offsets[0] + 4 * 7);
  modelCopy("models/nan-weights", { weights: nan });
  modelCopy("models/weights-folder", { weights: Buffer.alloc(0) });
  fs.rmSync(path.join(tmp, "models/weights-folder/model.safetensors"));
  fs.mkdirSync(path.join(tmp, "models/weights-folder/model.safetensors"));
  modelCopy("models/range-template", {
    tokenizerConfig: (c) => void (c.chat_template = "{% for i in range(100000000) %}x{% endfor %}"),
  });
  spawnSync("mkfifo", [path.join(tmp, "data/pipe.jsonl")]);
  // a question of 9 million characters (more than a chat template may make) beside an ordinary one
  write("data/huge-prompt.json", JSON.stringify([{ ...(train[0] as object), question: "x".repeat(9_000_000) }, train[1]]));

  // adapters
  adapter("adapters/good");
  adapter("adapters/r-mismatch", { config: adapterConfig(8) });
  adapter("adapters/config-not-json", { config: '{"peft_type": "LORA", ' });
  adapter("adapters/no-weights", { weights: null });
  adapter("adapters/extra-layer", { weights: adapterWeights([0, 1, 2, 3, 9]) });
  const huge = adapterWeights();
  huge.writeBigUInt64LE(1n << 40n);
  adapter("adapters/st-huge-header", { weights: huge });
  hostileAdapter("adapters/st-negative-offset", (h, k) => void (h[k[0]].data_offsets[0] = -4));
  hostileAdapter("adapters/st-overlap", (h, k) => void (h[k[1]].data_offsets = [...h[k[0]].data_offsets])); // q A and q B: both 4096 bytes
  hostileAdapter("adapters/st-bytes-vs-shape", (h, k) => void (h[k[0]].shape = [RANK + 1, 256]));
  hostileAdapter("adapters/st-unknown-dtype", (h, k) => void (h[k[0]].dtype = "F33"));
  hostileAdapter("adapters/st-duplicate-key", (h, k) =>
    JSON.stringify(h).replace(/}$/, `,${JSON.stringify(k[0])}:${JSON.stringify(h[k[0]])}}`),
  );
  hostileAdapter(
    "adapters/st-offset-past-end",
    (h, k) => void (h[k.at(-1)!].data_offsets = [h[k.at(-1)!].data_offsets[0] + 4, h[k.at(-1)!].data_offsets[1] + 4]),
  );
  adapter("adapters/st-empty", { weights: Buffer.alloc(0) });
  adapter("adapters/alpha-1e400", { config: adapterConfig().replace('"lora_alpha":8', '"lora_alpha":1e400') });
  adapter("adapters/catastrophic-rank-pattern", {
    config: JSON.stringify({ ...JSON.parse(adapterConfig()), rank_pattern: { "(q+)+$": 2 } }),
  });

  // outputs that are not svdlora's: a folder of the user's files, a regular file, a file of a step's name
  write("theirs/notes.txt", "keep me\n");
  write("a-file", "keep me too\n");
  write("notes/synthesis_report.txt", "my own report\n");
  write("teacher/not-json.safetensors", safetensorsBytes("[[[", Buffer.alloc(0)));

  // experiment files
  write("configs/lr-negative.json", JSON.stringify({ learningRate: -1, epochs: 1 }));
  write("configs/lr-zero.yaml", "learningRate: 0\nepochs: 1\n");
  write("configs/alpha-zero.json", JSON.stringify({ lora_alpha: 0 }));
  write("configs/rank-too-large.yaml", "epochs: 1\ntrainData: data/small.json\nevalData: null\nlora_rank: 300\n");
  write("configs/epochs-string.json", JSON.stringify({ epochs: "five" }));
  write("configs/unknown-key.json", JSON.stringify({ epoch: 1 }));
  write("configs/not-yaml.yaml", "epochs: 1\n  lr: [\n");
  write("configs/not-mapping.json", "[1, 2]");
  write("configs/empty.yaml", "");
  write("configs/bad-data.yaml", "trainData: data/invalid-utf8.json\n");
  write("configs/device.json", JSON.stringify({ device: "cuda:99" }));
  write("configs/gpt2.json", JSON.stringify({ baseModel: "models/gpt2", trainData: "data/small.json", evalData: null }));
});

// ---- cases ----

interface Case {
  /** What is hostile about the input (the docs table's first column). */
  input: string;
  args: string[];
  /** The stderr line (error cases) or a stdout line (exit-0 cases). */
  expect: RegExp;
  /** Exit 0 expected: the line is looked for on stdout. */
  ok?: boolean;
  /** A directory (of the temp dir) that must hold no file afterwards. */
  noOutput?: string;
  /** A file or folder (of the temp dir) whose bytes the command must leave as they were. */
  intact?: string;
}

const out = (name: string) => `out/${name}`;
const withData = (flag: string, args: string[]) => (args.includes(flag) ? args : [flag, "data/small.json", ...args]);
const train = (name: string, ...args: string[]) => [
  "train",
  ...withData("--train-data", args),
  "--epochs",
  "1",
  "--quiet",
  "--output-dir",
  out(name),
];
const evalCmd = (...args: string[]) => ["eval", ...withData("--data", args), "--no-generate", "--quiet"];
const runCmd = (name: string, config: string, ...args: string[]) => [
  "run",
  "--config",
  config,
  "--steps",
  "1",
  "--quiet",
  "--output-dir",
  out(name),
  ...args,
];

const DATA: Case[] = [
  {
    input: "empty data file",
    args: train("d-empty", "--train-data", "data/empty.json"),
    expect: /^svdlora: error: data\/empty\.json: the file is empty$/,
    noOutput: out("d-empty"),
  },
  {
    input: "JSON array with no items",
    args: train("d-no-items", "--train-data", "data/no-items.json"),
    expect: /data\/no-items\.json: the data set has no items/,
    noOutput: out("d-no-items"),
  },
  {
    input: "missing field (question without answer)",
    args: train("d-missing", "--train-data", "data/missing-field.json"),
    expect: /data\/missing-field\.json: item 1: matches no known shape \(its keys: question\): missing "answer" for \{question, answer\}/,
    noOutput: out("d-missing"),
  },
  {
    input: "missing field (question without answer)",
    args: evalCmd("--data", "data/missing-field.json"),
    expect: /data\/missing-field\.json: item 1: .*missing "answer"/,
  },
  {
    input: "wrong field type (question: 5)",
    args: train("d-type", "--train-data", "data/wrong-type.json"),
    expect: /data\/wrong-type\.json: item 1: field "question" must be a string, got number/,
    noOutput: out("d-type"),
  },
  {
    input: "unknown fields only",
    args: evalCmd("--data", "data/unknown-fields.json"),
    expect: /data\/unknown-fields\.json: item 1: matches no known shape \(its keys: text\)\. Accepted shapes: /,
  },
  {
    input: "invalid UTF-8 (JSON array)",
    args: train("d-utf8", "--train-data", "data/invalid-utf8.json"),
    expect: /data\/invalid-utf8\.json: not valid UTF-8 text \(at line 1, byte \d+\)/,
    noOutput: out("d-utf8"),
  },
  {
    input: "invalid UTF-8 (JSONL, line 2)",
    args: evalCmd("--data", "data/invalid-utf8.jsonl"),
    expect: /data\/invalid-utf8\.jsonl: not valid UTF-8 text \(at line 2, byte \d+\)/,
  },
  {
    input: "malformed JSONL line",
    args: train("d-jsonl", "--train-data", "data/bad-line.jsonl"),
    expect: /data\/bad-line\.jsonl: line 2: malformed JSON/,
    noOutput: out("d-jsonl"),
  },
  {
    input: "bad held-out data (--eval-data)",
    args: train("d-eval", "--eval-data", "data/empty.json"),
    expect: /data\/empty\.json: the file is empty/,
    noOutput: out("d-eval"),
  },
  {
    input: "data file that does not exist",
    args: evalCmd("--data", "data/nope.json"),
    expect: /data\/nope\.json: data set file not found/,
  },
  {
    input: "bad data named in the experiment file",
    args: runCmd("d-run", "configs/bad-data.yaml"),
    expect: /data\/invalid-utf8\.json: not valid UTF-8/,
    noOutput: out("d-run"),
  },
  {
    input: "every sample cut before its answer (--max-length 40)",
    args: train("d-all-cut", "--max-length", "40"),
    expect: /data\/small\.json: no sample has answer tokens left after formatting \(is --max-length 40 too small\?\)/,
    noOutput: out("d-all-cut"),
  },
  {
    input: "every sample cut before its answer (--max-length 40)",
    args: evalCmd("--max-length", "40"),
    expect: /data\/small\.json: no sample has answer tokens left after formatting \(is --max-length 40 too small\?\)/,
  },
  {
    input: "results file under a regular file (checked before the evaluation)",
    args: evalCmd("--output", "data/small.json/results.json"),
    expect:
      /^svdlora: error: data\/small\.json\/results\.json: cannot write the results file: \S*data\/small\.json is a file, not a folder$/,
  },
  {
    input: "samples longer than --max-length (120): not an error",
    args: train("d-truncated", "--max-length", "120"),
    expect: /^4 samples were longer than --max-length and were truncated$/m,
    ok: true,
  },
  {
    input: "samples longer than --max-length (90): not an error",
    args: evalCmd("--max-length", "90"),
    expect:
      /^held-out loss \d\.\d+ over 2 samples \(\d+ answer tokens\); 4 truncated to --max-length 90, 2 skipped \(no answer token left\)$/m,
    ok: true,
  },
];

const MODEL: Case[] = [
  {
    input: "unknown architecture (model_type gpt2)",
    args: train("c-arch", "--base-model", "models/gpt2"),
    expect: /models\/gpt2\/config\.json: unsupported architecture model_type "gpt2" \(GPT2LMHeadModel\): svdlora supports qwen2 and llama/,
    noOutput: out("c-arch"),
  },
  {
    input: "unknown architecture (model_type gpt2)",
    args: ["merge", "--base-model", "models/gpt2", "--adapter", "adapters/good", "--output-dir", out("c-arch-merge")],
    expect: /models\/gpt2\/config\.json: unsupported architecture/,
    noOutput: out("c-arch-merge"),
  },
  {
    input: "unknown architecture (model_type gpt2)",
    args: runCmd("c-arch-run", "configs/gpt2.json"),
    expect: /models\/gpt2\/config\.json: unsupported architecture/,
    noOutput: out("c-arch-run"),
  },
  {
    input: "config.json without hidden_size",
    args: train("c-hidden", "--base-model", "models/no-hidden-size"),
    expect: /models\/no-hidden-size\/config\.json: missing required field "hidden_size"/,
    noOutput: out("c-hidden"),
  },
  {
    input: "config.json without model_type",
    args: evalCmd("--base-model", "models/no-model-type"),
    expect: /models\/no-model-type\/config\.json: missing "model_type" \(expected one of qwen2, llama\)/,
  },
  {
    input: 'config.json field of the wrong type (num_hidden_layers "4")',
    args: ["merge", "--base-model", "models/string-layers", "--adapter", "adapters/good", "--output-dir", out("c-type")],
    expect: /models\/string-layers\/config\.json: "num_hidden_layers" must be a positive integer, got "4"/,
    noOutput: out("c-type"),
  },
  {
    input: "model directory without config.json",
    args: evalCmd("--base-model", "models/no-config"),
    expect: /models\/no-config\/config\.json: model config not found/,
  },
  {
    input: "config.json that is not JSON",
    args: train("c-json", "--base-model", "models/config-not-json"),
    expect: /models\/config-not-json\/config\.json: not valid JSON/,
    noOutput: out("c-json"),
  },
  {
    input: "config.json that disagrees with the weights (intermediate_size 512)",
    args: evalCmd("--base-model", "models/config-vs-weights"),
    expect:
      /models\/config-vs-weights: weight model\.layers\.0\.mlp\.gate_proj\.weight has shape \[704,256\], config\.json implies \[512,256\]/,
  },
];

const HYPER: Case[] = [
  {
    input: "LoRA rank > min(in, out) (v_proj: 256 → 64)",
    args: train("h-rank", "--lora-rank", "65", "--target-modules", "v_proj"),
    expect:
      /LoRA rank 65 is larger than model\.layers\.0\.self_attn\.v_proj allows \(min\(in 256, out 64\) = 64\): use a smaller --lora-rank/,
    noOutput: out("h-rank"),
  },
  {
    input: "LoRA rank > min(in, out) in the experiment file",
    args: runCmd("h-rank-run", "configs/rank-too-large.yaml"),
    expect: /LoRA rank 300 is larger than model\.layers\.0\.self_attn\.q_proj allows/,
    noOutput: out("h-rank-run"),
  },
  {
    input: "SVD rank > min(in, out)",
    args: ["svd", "--lora-adapter", "adapters/good", "--rank", "300", "--output-dir", out("h-svd-rank")],
    expect: /model\.layers\.0\.self_attn\.q_proj: rank 300 exceeds min\(out, in\) = 256/,
    noOutput: out("h-svd-rank"),
  },
  {
    input: "SVD rank > the adapter's rank",
    args: ["svd", "--lora-adapter", "adapters/good", "--rank", "8", "--output-dir", out("h-svd-rank2")],
    expect: /rank 8 exceeds the delta's rank 4/,
    noOutput: out("h-svd-rank2"),
  },
  {
    input: "teacher rank < the adapter's rank",
    args: ["synthesize-teacher", "--lora-adapter", "adapters/good", "--target-rank", "2", "--output-dir", out("h-syn-rank")],
    expect: /target rank 2 is below the LoRA rank 4; use a target rank ≥ 4/,
    noOutput: out("h-syn-rank"),
  },
  {
    input: "LoRA rank 0",
    args: train("h-rank0", "--lora-rank", "0"),
    expect: /option '--lora-rank <n>' argument '0' is invalid\. expected an integer ≥ 1, got "0"/,
  },
  {
    input: "alpha = 0",
    args: train("h-alpha0", "--lora-alpha", "0"),
    expect: /option '--lora-alpha <alpha>' argument '0' is invalid\. expected a number > 0, got "0"/,
  },
  {
    input: "alpha < 0",
    args: ["svd", "--lora-adapter", "adapters/good", "--lora-alpha", "-1", "--output-dir", out("h-alpha-svd")],
    expect: /argument '-1' is invalid\. expected a number > 0/,
    noOutput: out("h-alpha-svd"),
  },
  {
    input: "alpha = 0 in the experiment file",
    args: runCmd("h-alpha-cfg", "configs/alpha-zero.json"),
    expect: /^svdlora: error: configs\/alpha-zero\.json: lora_alpha must be a number > 0, got 0$/,
    noOutput: out("h-alpha-cfg"),
  },
  {
    input: "learning rate = 0",
    args: train("h-lr0", "--learning-rate", "0"),
    expect: /option '--learning-rate <lr>' argument '0' is invalid\. expected a number > 0/,
  },
  {
    input: "learning rate < 0",
    args: train("h-lrneg", "--learning-rate", "-1e-4"),
    expect: /argument '-1e-4' is invalid\. expected a number > 0/,
  },
  {
    input: "learning rate < 0 in the experiment file",
    args: runCmd("h-lr-cfg", "configs/lr-negative.json"),
    expect: /configs\/lr-negative\.json: learningRate must be a number > 0, got -1/,
    noOutput: out("h-lr-cfg"),
  },
  {
    input: "learning rate = 0 in the experiment file (YAML)",
    args: runCmd("h-lr-yaml", "configs/lr-zero.yaml"),
    expect: /configs\/lr-zero\.yaml: learningRate must be a number > 0, got 0/,
    noOutput: out("h-lr-yaml"),
  },
  {
    input: 'setting of the wrong type (epochs: "five")',
    args: runCmd("h-epochs", "configs/epochs-string.json"),
    expect: /configs\/epochs-string\.json: epochs must be an integer ≥ 1, got "five"/,
    noOutput: out("h-epochs"),
  },
  {
    input: "unknown setting in the experiment file",
    args: runCmd("h-unknown", "configs/unknown-key.json"),
    expect: /configs\/unknown-key\.json: unknown setting "epoch" \(did you mean epochs\?\); the settings are listed in docs\/config\.md$/,
    noOutput: out("h-unknown"),
  },
  {
    input: "experiment file that is not YAML",
    args: runCmd("h-yaml", "configs/not-yaml.yaml"),
    expect: /configs\/not-yaml\.yaml: not valid YAML/,
    noOutput: out("h-yaml"),
  },
  {
    input: "experiment file that is not a mapping",
    args: runCmd("h-mapping", "configs/not-mapping.json"),
    expect: /configs\/not-mapping\.json: expected a mapping of settings/,
    noOutput: out("h-mapping"),
  },
  {
    input: "empty experiment file",
    args: runCmd("h-empty", "configs/empty.yaml"),
    expect: /configs\/empty\.yaml: expected a mapping of settings/,
    noOutput: out("h-empty"),
  },
  {
    input: "experiment file that does not exist",
    args: runCmd("h-nofile", "configs/nope.yaml"),
    expect: /configs\/nope\.yaml: no such config file/,
    noOutput: out("h-nofile"),
  },
  {
    input: "a GPU that is not there (cuda:99)",
    args: evalCmd("--device", "cuda:99"),
    expect: /--device cuda:99: (no CUDA device is available .*: use --device cpu|no such GPU)/,
  },
  {
    input: "a GPU that is not there, in the experiment file",
    args: runCmd("h-device", "configs/device.json"),
    expect: /configs\/device\.json: device cuda:99: (no CUDA device is available|no such GPU)/,
    noOutput: out("h-device"),
  },
  {
    input: "unknown extra arm",
    args: ["run", "--steps", "3", "--arms", "pisa", "--output-dir", out("h-arms")],
    expect:
      /option '--arms <list>' argument 'pisa' is invalid\. expected none or a comma-separated list of all, random-continued, svd-full, svd-xfit, gaussian, pissa, pissa-niter-N, olora/,
    noOutput: out("h-arms"),
  },
  {
    input: "negative accuracy sample count",
    args: ["run", "--steps", "1", "--accuracy-samples", "-1", "--output-dir", out("h-acc")],
    expect: /argument '-1' is invalid\. expected an integer ≥ 0/,
    noOutput: out("h-acc"),
  },
];

const ADAPTER: Case[] = [
  {
    input: "adapter for another model (module and shapes named)",
    args: evalCmd("--adapter", path.join(golden, "qwen2-tiny-lora")),
    expect: /adapter model\.layers\.0\.\S+: lora_A \[4,\d+\] \/ lora_B \[\d+,4\] do not fit the base layer \(want \[4,\d+\] \/ \[\d+,4\]\)/,
  },
  {
    input: "adapter for another model (module and shapes named)",
    args: ["merge", "--base-model", model, "--adapter", path.join(golden, "qwen2-tiny-lora"), "--output-dir", out("a-merge")],
    expect: /do not fit the base layer/,
    noOutput: out("a-merge"),
  },
  {
    input: "adapter for another model (module and shapes named)",
    args: train("a-svd-init", "--init", "svd", "--svd-factors", path.join(golden, "qwen2-tiny-lora"), "--lora-rank", "4"),
    expect: /do not fit the base layer/,
    noOutput: out("a-svd-init"),
  },
  {
    input: "adapter with a layer the base lacks (layers.9)",
    args: evalCmd("--adapter", "adapters/extra-layer"),
    expect: /adapter module model\.layers\.9\.self_attn\.q_proj does not exist in the base model \(is it the right --base-model\?\)/,
  },
  {
    input: "adapter_config.json r differs from the weights",
    args: evalCmd("--adapter", "adapters/r-mismatch"),
    expect:
      /adapters\/r-mismatch\/adapter_model\.safetensors: model\.layers\.0\.self_attn\.q_proj has rank 4 \(lora_A \[4,256\]\) and 4 \(lora_B \[256,4\]\) but the config says r = 8/,
  },
  {
    input: "--svd-factors rank differs from --lora-rank",
    args: train("a-rank", "--init", "svd", "--svd-factors", "adapters/good", "--lora-rank", "8"),
    expect: /--svd-factors adapters\/good has rank 4 but --lora-rank is 8: make them equal/,
    noOutput: out("a-rank"),
  },
  {
    input: "adapter directory that does not exist",
    args: evalCmd("--adapter", "adapters/nope"),
    expect: /adapters\/nope: no such adapter directory/,
  },
  {
    input: "a model directory given as an adapter",
    args: ["synthesize-teacher", "--lora-adapter", "models/gpt2", "--output-dir", out("a-not-adapter")],
    expect: /models\/gpt2: no adapter_config\.json; not a PEFT adapter directory/,
    noOutput: out("a-not-adapter"),
  },
  {
    input: "adapter_config.json that is not JSON",
    args: evalCmd("--adapter", "adapters/config-not-json"),
    expect: /adapters\/config-not-json\/adapter_config\.json: not valid JSON/,
  },
  {
    input: "adapter without adapter_model.safetensors",
    args: ["merge", "--base-model", model, "--adapter", "adapters/no-weights", "--output-dir", out("a-no-weights")],
    expect: /adapters\/no-weights: no adapter_model\.safetensors next to adapter_config\.json/,
    noOutput: out("a-no-weights"),
  },
];

const ST = "not a valid safetensors file";
const SAFETENSORS: Case[] = [
  {
    input: "model.safetensors: header length beyond the file",
    args: evalCmd("--base-model", "models/st-header-past-end"),
    expect: new RegExp(`models/st-header-past-end/model\\.safetensors: ${ST}: header length \\d+ runs past the end of the file`),
  },
  {
    input: "model.safetensors: header not JSON",
    args: train("s-model-json", "--base-model", "models/st-header-not-json"),
    expect: new RegExp(`models/st-header-not-json/model\\.safetensors: ${ST}: the header is not valid JSON`),
    noOutput: out("s-model-json"),
  },
  {
    input: "model.safetensors: cut in half (offsets past the end)",
    args: ["merge", "--base-model", "models/st-truncated", "--adapter", "adapters/good", "--output-dir", out("s-model-cut")],
    expect: new RegExp(
      `models/st-truncated/model\\.safetensors: ${ST}: tensor "[^"]+" has data_offsets \\[\\d+, \\d+\\] past the end of the data`,
    ),
    noOutput: out("s-model-cut"),
  },
  {
    input: "adapter: huge header length (2^40)",
    args: evalCmd("--adapter", "adapters/st-huge-header"),
    expect: new RegExp(
      `adapters/st-huge-header/adapter_model\\.safetensors: ${ST}: header length 1099511627776 exceeds the 100000000-byte limit`,
    ),
  },
  {
    input: "adapter: negative offset",
    args: evalCmd("--adapter", "adapters/st-negative-offset"),
    expect: new RegExp(`${ST}: tensor "[^"]+" has data_offsets \\[-4,\\d+\\]: they must be non-negative integers`),
  },
  {
    input: "adapter: overlapping tensors",
    args: ["merge", "--base-model", model, "--adapter", "adapters/st-overlap", "--output-dir", out("s-overlap")],
    expect: new RegExp(`adapters/st-overlap/adapter_model\\.safetensors: ${ST}: tensors "[^"]+" and "[^"]+" overlap`),
    noOutput: out("s-overlap"),
  },
  {
    input: "adapter: offsets past the end of the data",
    args: evalCmd("--adapter", "adapters/st-offset-past-end"),
    expect: new RegExp(`${ST}: tensor "[^"]+" has data_offsets \\[\\d+, \\d+\\] past the end of the data`),
  },
  {
    input: "adapter: byte count ≠ dtype × shape",
    args: train("s-bytes", "--init", "svd", "--svd-factors", "adapters/st-bytes-vs-shape", "--lora-rank", "4"),
    expect: new RegExp(`${ST}: tensor "[^"]+" has 4096 bytes of data but dtype F32 × shape \\[5,256\\] needs 5120`),
    noOutput: out("s-bytes"),
  },
  {
    input: "adapter: unknown dtype",
    args: ["synthesize-teacher", "--lora-adapter", "adapters/st-unknown-dtype", "--output-dir", out("s-dtype")],
    expect: new RegExp(`adapters/st-unknown-dtype/adapter_model\\.safetensors: ${ST}: tensor "[^"]+" has unknown dtype "F33"`),
    noOutput: out("s-dtype"),
  },
  {
    input: "adapter: duplicate key",
    args: ["svd", "--lora-adapter", "adapters/st-duplicate-key", "--output-dir", out("s-dup")],
    expect: new RegExp(`${ST}: the header has the key "[^"]+" twice`),
    noOutput: out("s-dup"),
  },
  {
    input: "adapter: empty adapter_model.safetensors",
    args: evalCmd("--adapter", "adapters/st-empty"),
    expect: new RegExp(`${ST}: it is 0 bytes long, shorter than the 8-byte header length`),
  },
  {
    input: "teacher file: header not JSON",
    args: ["svd", "--synthesized-delta", "teacher/not-json.safetensors", "--output-dir", out("s-teacher")],
    expect: new RegExp(`teacher/not-json\\.safetensors: ${ST}: the header is not valid JSON`),
    noOutput: out("s-teacher"),
  },
  {
    input: "teacher file: an adapter's weights instead",
    args: ["svd", "--synthesized-delta", "adapters/good/adapter_model.safetensors", "--output-dir", out("s-not-teacher")],
    expect: /adapters\/good\/adapter_model\.safetensors: not a synthesized delta/,
    noOutput: out("s-not-teacher"),
  },
];

const INPUTS: Case[] = [
  {
    input: "adapter with lora_alpha 1e400 (Infinity once parsed)",
    args: evalCmd("--adapter", "adapters/alpha-1e400"),
    expect: /^svdlora: error: adapters\/alpha-1e400\/adapter_config\.json: "lora_alpha" must be a finite number > 0, got Infinity$/,
  },
  {
    input: "a FIFO given as the data set",
    args: train("i-fifo", "--train-data", "data/pipe.jsonl"),
    expect: /^svdlora: error: data\/pipe\.jsonl: is a named pipe \(FIFO\), not the data set file \(a regular file\)$/,
    noOutput: out("i-fifo"),
  },
  {
    input: "a folder where model.safetensors should be",
    args: evalCmd("--base-model", "models/weights-folder"),
    expect: /models\/weights-folder\/model\.safetensors: is a folder, not the safetensors file \(a regular file\)/,
  },
  {
    input: "a chat template that calls range(100000000)",
    args: train("i-range", "--base-model", "models/range-template"),
    expect: /the chat template calls range\(100000000\): 100000000 items \(at most 100000\)/,
    noOutput: out("i-range"),
  },
  {
    input: "a rank_pattern key with catastrophic backtracking",
    args: evalCmd("--adapter", "adapters/catastrophic-rank-pattern"),
    expect: /rank_pattern key "\(q\+\)\+\$" is refused: repeating a group that repeats or alternates \(exponential backtracking\)/,
  },
  {
    input: "a 9-million-character question (beyond the template's size limit): left out of loss and accuracy, not an error",
    args: ["eval", "--data", "data/huge-prompt.json", "--max-new-tokens", "2", "--quiet"],
    expect: /^accuracy {2}\d\/1 = \d+\.\d % \(1 prompts longer than --max-length could hold were left out\)$/m,
    ok: true,
  },
  {
    input: "NaN in a base model weight",
    args: train("i-nan", "--base-model", "models/nan-weights"),
    expect:
      /models\/nan-weights\/model\.safetensors: tensor "lm_head\.weight" holds 1 NaN or infinite values \(of \d+\): the file is damaged or its training diverged/,
    noOutput: out("i-nan"),
  },
];

const DATA_LOSS: Case[] = [
  {
    input: "merge into a folder of files svdlora did not write",
    args: ["merge", "--base-model", model, "--adapter", "adapters/good", "--output-dir", "theirs"],
    expect:
      /^svdlora: error: theirs is a folder that svdlora did not write \(svdlora replaces only folders with its svdlora\.json\): move it away or choose another output path$/,
    intact: "theirs",
  },
  {
    input: "merge onto a regular file",
    args: ["merge", "--base-model", model, "--adapter", "adapters/good", "--output-dir", "a-file"],
    expect: /^svdlora: error: a-file: cannot write the merged model folder: \S*\/a-file is a file, not a folder$/,
    intact: "a-file",
  },
  {
    input: "train over an earlier run without --overwrite",
    args: train("earlier-run"),
    expect:
      /^svdlora: error: a run named random is already in out\/earlier-run: replace it with --overwrite, or give this run another name or output folder$/,
    intact: out("earlier-run"),
  },
  {
    input: "eval --output onto a file svdlora did not write (the data set)",
    args: evalCmd("--output", "data/small.json"),
    expect:
      /^svdlora: error: data\/small\.json is a file that svdlora did not write \(its folder's svdlora_outputs\.json does not list it\): move it away or choose another output path$/,
    intact: "data/small.json",
  },
  {
    input: "synthesize-teacher into a folder with a file of its output's name",
    args: ["synthesize-teacher", "--lora-adapter", "adapters/good", "--output-dir", "notes"],
    expect:
      /^svdlora: error: notes\/synthesis_report\.txt is a file that svdlora did not write .*: move it away or choose another output path$/,
    intact: "notes",
  },
];

const rows = new Map<Case, string>();
const cell = (s: string) =>
  s
    .replaceAll("|", "\\|")
    .replaceAll(`${tmp}/`, "")
    .replaceAll(golden, "test/fixtures/golden/")
    .replaceAll(model.replace(/\/$/, ""), "models/tiny-prob");

function check(c: Case) {
  return async () => {
    const r = await svdlora(...c.args);
    if (c.ok) {
      assert.equal(r.code, 0, `exit 0 expected, got ${r.code}:\n${r.stderr}`);
      assert.match(r.stdout, c.expect);
    } else {
      assertOneLineError(r, c.expect);
    }
    if (c.noOutput) assert.deepEqual(filesUnder(c.noOutput), [], `nothing written under ${c.noOutput}`);
    if (c.intact) assert.ok(sameTree(treeFiles(path.join(tmp, c.intact)), intact.get(c.intact)!), `${c.intact} changed`);
    const line = c.ok ? (r.stdout.split("\n").find((l) => c.expect.test(l)) ?? "") : r.stderr.split("\n")[0];
    rows.set(c, `| ${cell(c.input)} | \`svdlora ${cell(c.args.join(" "))}\` | \`${cell(line)}\` | ${r.code} |`);
  };
}

const GROUPS = [
  ["data files", DATA],
  ["model directories and config.json", MODEL],
  ["hyperparameters, devices and experiment files", HYPER],
  ["adapters", ADAPTER],
  ["damaged safetensors files", SAFETENSORS],
  ["the inputs round: numbers, special files, templates, regexes, weights", INPUTS],
  ["outputs svdlora did not write, and earlier runs", DATA_LOSS],
] as const;
// In one process the cases run one after another (each command owns the process while it runs).
describe("hostile input through the CLI", () => {
  before(async () => {
    // an earlier run to keep
    const r = await svdlora(...train("earlier-run"));
    assert.equal(r.code, 0, r.stderr);
    for (const c of DATA_LOSS) if (c.intact) intact.set(c.intact, treeFiles(path.join(tmp, c.intact)));
  });
  for (const [name, cases] of GROUPS) for (const c of cases) it(`${name}: ${c.input}: ${c.args[0]}`, check(c));
});

after(() => {
  const file = process.env.SVDLORA_HOSTILE_TABLE;
  if (!file) return;
  const sections = GROUPS.map(([name, cases]) =>
    [
      `### ${name[0].toUpperCase()}${name.slice(1)}`,
      "",
      "| input | command | svdlora prints | exit |",
      "|---|---|---|---|",
      ...cases.map((c) => rows.get(c) ?? `| ${cell(c.input)} | (not run) | | |`),
    ].join("\n"),
  );
  fs.writeFileSync(file, `${sections.join("\n\n")}\n`);
});
