// Command-line flags and config files from the settings schemas (util/settings.ts): every setting
// with a flag becomes an option (its help shows the default), a config file (--config) may set any
// of them, and the flags given override the file, which overrides the defaults. Light on purpose:
// every command's flags are built from here before anything runs (`--help` loads no libtorch).
import fs from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import { NO_SETTING } from "../train/settings.js";
import { type Schema, type SettingError, flagName, kebabCase, parseConfigText, readSettings } from "../util/settings.js";

const schemas = new WeakMap<Command, Schema>();

/** A flag's value "none" (null): commander would turn a null from a parser into "", so it travels as this. */
const NONE = Symbol("none");

/** The schema a command's flags came from (to name flags in error messages). */
export const schemaOf = (cmd: Command | null): Schema => (cmd && schemas.get(cmd)) ?? {};

/** Adds an option for every setting of schema that has a flag. */
export function addSettingFlags(cmd: Command, schema: Schema): Command {
  schemas.set(cmd, { ...schemaOf(cmd), ...schema });
  for (const [key, s] of Object.entries(schema)) {
    const flag = flagName(key, s);
    if (!flag) continue;
    const shown =
      s.default !== undefined && s.default !== null && s.kind.placeholder !== null ? ` (default: ${s.kind.show(s.default)})` : "";
    if (s.kind.placeholder === null) {
      // A switch: --x sets true; --no-x is offered where the default is not false.
      if (s.default !== true) cmd.addOption(new Option(`--${flag}`, s.help));
      if (s.default !== false)
        cmd.addOption(new Option(`--no-${flag}`, s.default === true ? `${s.help}: turn it off` : `the opposite of --${flag}`));
      continue;
    }
    cmd.addOption(
      new Option(`--${flag} ${s.kind.placeholder}`, `${s.help}${shown}`).argParser((text: string) => {
        const v = s.kind.fromText(text);
        if (v === undefined) throw new InvalidArgumentError(`expected ${s.kind.expected}, got ${JSON.stringify(text)}`);
        return v === null ? NONE : v;
      }),
    );
    // A setting that may be null (e.g. no system prompt) also has --no-x.
    if (s.kind.fromValue(null) === null) cmd.addOption(new Option(`--no-${flag}`, `no ${flag.replace(/-/g, " ")}`));
  }
  return cmd;
}

/** The settings given as flags on the command line (not their defaults), by key. */
export function flagValues<S extends Schema>(cmd: Command, schema: S): Record<string, unknown> {
  const opts = cmd.opts();
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(schema)) {
    const flag = flagName(key, s);
    if (!flag) continue;
    const attribute = new Option(`--${flag}`).attributeName();
    if (cmd.getOptionValueSource(attribute) !== "cli") continue;
    const v = opts[attribute];
    // --no-x for a nullable setting reads as false: it means "none".
    out[key] = v === NONE || (v === false && s.kind.placeholder !== null) ? null : v;
  }
  return out;
}

/** A config file's settings (JSON or YAML), checked against schema. */
export function readConfigFile<S extends Schema>(file: string, schema: S): Record<string, unknown> {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new Error(`${file}: not a regular file`);
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`${file}: no such config file`);
    throw e;
  }
  return readSettings(schema, parseConfigText(text, file), file, NO_SETTING);
}

/** Defaults < config file (--config) < flags: the settings given, by key. */
export function givenSettings<S extends Schema>(cmd: Command, schema: S): Record<string, unknown> {
  const file = cmd.opts().config as string | undefined;
  return { ...(file ? readConfigFile(file, schema) : {}), ...flagValues(cmd, schema) };
}

/** Refuses a device this machine lacks, naming where it was set (a flag, or the config file). Loads libtorch for "cuda". */
export async function checkDevice(cmd: Command, device: string | undefined): Promise<void> {
  const { deviceProblem } = await import("./args.js");
  const problem = deviceProblem(device ?? "cpu");
  if (!problem) return;
  const file = cmd.opts().config as string | undefined;
  const where = file && cmd.getOptionValueSource("device") !== "cli" ? `${file}: device` : "--device";
  throw new Error(`${where} ${device}: ${problem}`);
}

/** `maxNewTokens` bounds only the answers of `accuracySamples`: given without them, it would do nothing. */
export function refuseUnusedMaxNewTokens(given: Record<string, unknown>, accuracySamples = given.accuracySamples): void {
  if (given.maxNewTokens !== undefined && !accuracySamples)
    throw new Error(
      "`maxNewTokens` bounds the answers generated for `accuracySamples`, and none are asked for: add `accuracySamples` N, or drop `maxNewTokens`",
    );
}

/** A setting's name as the user knows it: its flag (or its config key when it has no flag). */
export function settingName(schema: Schema, key: string): string {
  const s = schema[key];
  const flag = s ? flagName(key, s) : null;
  return flag ? `--${flag}` : key;
}

/** Text from the library with each setting it names by key in backticks (`learningRate`) said as its flag. */
export function withFlagNames(text: string, schema: Schema): string {
  return text.replace(/`([a-z][A-Za-z]*)`/g, (_, key: string) => (schema[key] ? settingName(schema, key) : `--${kebabCase(key)}`));
}

/** A library SettingError from values given in code: said with the flag's name. */
export function explainSettingError(e: SettingError, schema: Schema): string {
  if (e.source) return e.message; // from a config file: already names the file and the key as written
  return e.message.replace(e.key, settingName(schema, e.key));
}
