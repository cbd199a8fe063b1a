// docs/config.md, generated from what the command line registers (each command's settings
// schema and its other options) and from NO_SETTING: every setting of every command with its
// flag, config-file key, aliases, default and help, then which Hugging Face TrainingArguments /
// PEFT LoraConfig / LLaMA-Factory keys map to which setting and which ones svdlora has no
// setting for, and why. `node scripts/config-table.mjs` writes the file; a test keeps it current.
import type { Command } from "commander";
import { PACKAGE_ROOT } from "../paths.js";
import { LORA_TRAINING, NO_SETTING } from "../train/settings.js";
import { type Schema, configNames, flagName, snakeCase } from "../util/settings.js";
import { buildProgram } from "./main.js";
import { schemaOf } from "./settings.js";

/** Well-known keys of the libraries researchers come from, each resolved against `svdlora train`'s settings. */
const FAMILIAR: [string, string[]][] = [
  [
    "Hugging Face TrainingArguments",
    [
      "output_dir",
      "overwrite_output_dir",
      "num_train_epochs",
      "max_steps",
      "per_device_train_batch_size",
      "per_device_eval_batch_size",
      "gradient_accumulation_steps",
      "learning_rate",
      "lr_scheduler_type",
      "lr_scheduler_kwargs",
      "warmup_ratio",
      "warmup_steps",
      "weight_decay",
      "max_grad_norm",
      "optim",
      "adam_beta1",
      "adam_beta2",
      "adam_epsilon",
      "seed",
      "data_seed",
      "bf16",
      "fp16",
      "gradient_checkpointing",
      "eval_strategy",
      "evaluation_strategy",
      "eval_steps",
      "save_strategy",
      "save_steps",
      "save_total_limit",
      "load_best_model_at_end",
      "metric_for_best_model",
      "logging_steps",
      "logging_strategy",
      "logging_dir",
      "report_to",
      "resume_from_checkpoint",
      "run_name",
      "disable_tqdm",
      "do_train",
      "do_eval",
      "use_cpu",
      "no_cuda",
      "dataloader_num_workers",
      "dataloader_drop_last",
      "group_by_length",
      "label_smoothing_factor",
      "torch_compile",
      "deepspeed",
      "fsdp",
      "ddp_backend",
      "push_to_hub",
      "hub_model_id",
    ],
  ],
  [
    "PEFT LoraConfig",
    [
      "r",
      "lora_alpha",
      "lora_dropout",
      "target_modules",
      "use_rslora",
      "init_lora_weights",
      "bias",
      "task_type",
      "modules_to_save",
      "fan_in_fan_out",
      "use_dora",
      "layers_to_transform",
      "layers_pattern",
      "rank_pattern",
      "alpha_pattern",
    ],
  ],
  [
    "LLaMA-Factory",
    [
      "model_name_or_path",
      "stage",
      "finetuning_type",
      "template",
      "dataset",
      "dataset_dir",
      "cutoff_len",
      "max_samples",
      "val_size",
      "default_system",
      "lora_rank",
      "lora_alpha",
      "lora_dropout",
      "lora_target",
      "plot_loss",
      "quantization_bit",
      "flash_attn",
      "preprocessing_num_workers",
      "overwrite_cache",
      "trust_remote_code",
    ],
  ],
  ["Hugging Face example scripts and TRL", ["train_file", "validation_file", "max_eval_samples", "max_seq_length"]],
];

const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");
const code = (s: string) => `\`${s}\``;
const quoteValue = (v: unknown) => code(JSON.stringify(v));

function aliasesOf(schema: Schema, key: string): string[] {
  return [...configNames(schema)].filter(([name, k]) => k.key === key && name !== key && name !== snakeCase(key)).map(([name]) => name);
}

/** A command's settings; the config-file columns only for commands that read a config file. */
function settingsTable(cmd: Command, schema: Schema): string[] {
  const file = cmd.options.some((o) => o.long === "--config");
  const row = (flags: string, key: string, aliases: string, def: string, help: string) =>
    file ? `| ${flags} | ${key} | ${aliases} | ${def} | ${help} |` : `| ${flags} | ${def} | ${help} |`;
  const rows = Object.entries(schema).map(([key, s]) => {
    // The flags the command registered for it: --x, and --no-x where there is one.
    const flag = flagName(key, s);
    const flags = cmd.options.map((o) => o.long ?? "").filter((long) => flag && (long === `--${flag}` || long === `--no-${flag}`));
    // Paths inside svdlora's own folder (the embedded model and data) read the same in every checkout.
    const def = s.default === undefined ? "" : code(s.kind.show(s.default).split(PACKAGE_ROOT).join("<svdlora>/"));
    return row(
      flags.map(code).join(" ") || "(file only)",
      code(snakeCase(key)),
      aliasesOf(schema, key).map(code).join(", "),
      cell(def),
      cell(s.help),
    );
  });
  // Options that are not settings: --config, --steps, --force.
  const settingFlags = new Set(Object.entries(schema).flatMap(([key, s]) => [`--${flagName(key, s)}`, `--no-${flagName(key, s)}`]));
  const others = cmd.options
    .filter((o) => o.long && !settingFlags.has(o.long) && o.long !== "--help")
    .map((o) => row(code(o.flags), "", "", "", cell(o.description)));
  const header = file
    ? ["| flag | config key | aliases | default | what it does |", "|---|---|---|---|---|"]
    : ["| flag | default | what it does |", "|---|---|---|"];
  return [...header, ...rows, ...others];
}

function familiarTable(keys: string[]): string[] {
  const names = configNames(LORA_TRAINING);
  const rows = keys.map((name) => {
    const known = names.get(name);
    if (known) {
      const s = LORA_TRAINING[known.key as keyof typeof LORA_TRAINING];
      const flag = flagName(known.key, s);
      return `| ${code(name)} | ${flag ? code(`--${flag}`) : code(snakeCase(known.key))}${known.alias?.expected ? ` (${cell(known.alias.expected)})` : ""} |`;
    }
    const without = NO_SETTING[name];
    if (!without) throw new Error(`config docs: ${name} is neither a setting of svdlora train nor in NO_SETTING`);
    const same = without.same?.length ? `; accepted as ${without.same.map(quoteValue).join(", ")}` : "";
    return `| ${code(name)} | no setting: ${cell(without.why)}${same} |`;
  });
  return ["| key | svdlora |", "|---|---|", ...rows];
}

/** The text of docs/config.md. */
export function configDocs(): string {
  const program = buildProgram({ io: { stdout: { write: () => true }, stderr: { write: () => true }, interactive: false } });
  const lines = [
    "# Settings",
    "",
    "<!-- Generated by `node scripts/config-table.mjs` from the settings schemas; test/cli/config-docs.test.ts keeps it current. -->",
    "",
    "Every setting of every command: its flag, its key in a config file (`--config`, JSON or YAML,",
    "for `train`, `train-full` and `run`), the other names a config file may use for it, its default",
    "and what it does. A config file may also write a key in camelCase (`learningRate`). Flags",
    "override the config file, which overrides the defaults. A key that is no setting is refused",
    "with the nearest setting's name; a well-known key svdlora has no setting for is refused with",
    "the reason (see the last section), unless its value asks for what svdlora does anyway.",
    "",
  ];
  for (const cmd of program.commands) {
    const schema = schemaOf(cmd);
    if (Object.keys(schema).length === 0 && cmd.options.length === 0) continue;
    lines.push(`## svdlora ${cmd.name()}`, "", cmd.description(), "", ...settingsTable(cmd, schema), "");
  }
  lines.push("## Familiar names", "", "Keys from the libraries LoRA runs are usually configured with, as `svdlora train` reads them.", "");
  for (const [library, keys] of FAMILIAR) lines.push(`### ${library}`, "", ...familiarTable(keys), "");
  return `${lines.join("\n").trimEnd()}\n`;
}
