// Patterns from files: what is accepted, what is refused and why, and what the worst accepted one costs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decoderModuleNames, isTargetModule, parseAdapterConfig, rankFor } from "../../src/hf/peft.js";
import { checkRegex, compileFileRegex } from "../../src/hf/regex.js";
import { QWEN2_SPLIT_REGEX } from "../../src/data/tiny-tokenizer.js";

const problem = (source: string, dialect: "python" | "tokenizer" = "python") => checkRegex(source, dialect).problem;

describe("patterns from files", () => {
  it("accepts the patterns PEFT users and tokenizers write", () => {
    for (const p of [
      "q_proj",
      "model.layers.0.self_attn.q_proj",
      ".*\\.(q|v)_proj",
      "model\\.layers\\.\\d+\\.self_attn\\.(q|k|v|o)_proj",
      ".*decoder.*(SelfAttention|EncDecAttention).*(q|v)$",
      "^(?!.*vision).*\\.(q_proj|v_proj)",
      "layers\\.[0-9]{1,2}\\.mlp\\.(gate|up|down)_proj",
      "layers",
    ]) {
      assert.equal(problem(p), undefined, p);
    }
    for (const p of [
      QWEN2_SPLIT_REGEX,
      // Llama 3
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      // GPT-2
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
      // GPT-4o style
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      // DeepSeek splits
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ]) {
      assert.equal(problem(p, "tokenizer"), undefined, p);
    }
  });

  it("refuses exponential, unbounded or foreign syntax, saying why", () => {
    const cases: [string, RegExp][] = [
      ["(a+)+$", /repeating a group that repeats or alternates \(exponential backtracking\)/],
      ["(a|a)*b", /repeating a group that repeats or alternates/],
      ["(\\w+\\s?)*$", /repeating a group that repeats or alternates/],
      ["(.*a){12}", /repeating a group that repeats or alternates/],
      ["(a)\\1", /a backreference or octal escape/],
      [".*.*.*.*x", /4 repetitions one after another \(at most 3/],
      ["(a|b|c|d)(a|b|c|d)(a|b)", /32 ways through its alternations \(at most 16\)/],
      ["(?P<x>q)", /the group syntax "\(\?P<x…"/],
      ["(?<=a)b", /the group syntax/],
      ["(?i)q_proj", /the group syntax/],
      ["q_proj\\Z", /the escape \\Z/],
      ["a{,3}", /a "\{" that is not a quantifier/],
      ["a{1001}", /a count above 1000/],
      ["a*+", /a possessive quantifier/],
      ["[]a]", /a "\]" first in a character class/],
      ["(q", /a group without its "\)"/],
      ["q)", /unbalanced "\)"/],
      ["*q", /a quantifier with nothing to repeat/],
      ["^*", /a quantifier on an assertion/],
      ["x".repeat(1001), /1001 characters long \(at most 1000\)/],
    ];
    for (const [source, why] of cases) assert.match(problem(source) ?? "accepted", why, source);
    assert.match(problem("(\\s+)+x", "tokenizer") ?? "accepted", /repeating a group/);
  });

  it("names the file and the field when it refuses", () => {
    assert.throws(
      () => compileFileRegex("(a+)+", "x/adapter_config.json", "rank_pattern key"),
      /^Error: x\/adapter_config\.json: rank_pattern key "\(a\+\)\+" is refused: repeating a group/,
    );
  });

  it("the worst accepted adapter config takes about 0.1 s over every module of a 28-layer model; more is refused", () => {
    const modules = decoderModuleNames(28);
    const worst = { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: "(.|.)(.|.)(.|.)(.|.).*.*.*x" };
    const start = performance.now();
    const config = parseAdapterConfig(worst);
    for (const m of modules) isTargetModule(config, m);
    const ms = performance.now() - start;
    assert.ok(ms < 1000, `${ms.toFixed(1)} ms over ${modules.length} module names`);
    assert.throws(
      () => parseAdapterConfig({ ...worst, exclude_modules: worst.target_modules }),
      /its patterns together could take over 5000000 matching steps per module name; simplify exclude_modules/,
    );
    const literals = Object.fromEntries(modules.map((m) => [m, 4]));
    const perModule = parseAdapterConfig({ ...worst, target_modules: ["q_proj"], rank_pattern: literals });
    assert.equal(rankFor(perModule, "model.layers.27.self_attn.q_proj"), 4, "one literal key per module is cheap");
  });
});
