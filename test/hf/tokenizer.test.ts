import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HfTokenizer, loadTokenizer } from "../../src/hf/tokenizer.js";
import { buildByteLevelTokenizer } from "../../src/data/tiny-tokenizer.js";
import { tempDir as sharedTempDir } from "../helpers.js";

// Compiled to dist/test/hf/; the fixtures stay in the source tree.
const fixture = fileURLToPath(new URL("../../../test/fixtures/tokenizers/qwen-style", import.meta.url));
const MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}.";

const tempDir = () => sharedTempDir("tok");

test("loads a Qwen-style tokenizer: special tokens from dicts and strings, stop ids, vocab size", async () => {
  const tok = await loadTokenizer(fixture);
  assert.deepEqual(tok.eos, { content: "<|im_end|>", id: 262 });
  assert.deepEqual(tok.pad, { content: "<|endoftext|>", id: 260 });
  assert.equal(tok.bos, undefined);
  assert.deepEqual([...tok.stopTokenIds].sort(), [260, 262]);
  assert.deepEqual([...tok.specialTokenIds].sort(), [260, 261, 262]);
  assert.equal(tok.vocabSize, 263);
  assert.equal(tok.tokenToId("<|im_start|>"), 261);
  assert.equal(tok.idToToken(259), "ĊĊ");
});

test("encodes to the ids the byte map and the fixture's merges give", async () => {
  const tok = await loadTokenizer(fixture);
  // "H"=0x48 → 0x48-0x21 = 39, "i" → 72, "!" → 0; " the" → Ġt+he → Ġthe = 258; "\n\n" → ĊĊ = 259.
  assert.deepEqual(tok.encode("Hi! the"), [39, 72, 0, 258]);
  assert.deepEqual(tok.encode("the\n\n"), [83, 257, 259]);
  // Special tokens are never split, whatever surrounds them.
  assert.deepEqual(tok.encode("<|im_start|>a<|im_end|>"), [261, 64, 262]);
  // The fixture has Qwen2's NFC normalizer: a decomposed "é" encodes as the composed one (C3 A9 → 127, 102).
  assert.deepEqual(tok.encode("e\u0301"), [127, 102]);
});

test("decode inverts encode and can drop special tokens", async () => {
  const tok = await loadTokenizer(fixture);
  const text = "<|im_start|>user\nWhat is $\\frac{3}{8}$? 😀 中文<|im_end|>\n";
  const ids = tok.encode(text, { addSpecialTokens: false });
  assert.equal(tok.decode(ids), text);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "user\nWhat is $\\frac{3}{8}$? 😀 中文\n");
  assert.equal(tok.decode([]), "");
  assert.throws(() => tok.decode([263]), /263 is not in the vocabulary/);
  assert.throws(() => tok.decode([-1]), /not in the vocabulary/);
});

test("renders Qwen2.5-Math's template (the 'default' of a template list), adding its system prompt", async () => {
  const tok = await loadTokenizer(fixture);
  const conversation = [
    { role: "user" as const, content: "What is 1+1?" },
    { role: "assistant" as const, content: "\\boxed{2}" },
  ];
  assert.equal(
    tok.applyChatTemplate(conversation),
    `<|im_start|>system\n${MATH_SYSTEM}<|im_end|>\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n\\boxed{2}<|im_end|>\n`,
  );
  assert.equal(
    tok.applyChatTemplate(conversation.slice(0, 1), { addGenerationPrompt: true }),
    `<|im_start|>system\n${MATH_SYSTEM}<|im_end|>\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n`,
  );
  const withSystem = [{ role: "system" as const, content: "Be brief." }, ...conversation];
  assert.ok(tok.applyChatTemplate(withSystem).startsWith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"));
});

test("chat_template.jinja takes precedence over tokenizer_config's chat_template", async () => {
  const dir = tempDir();
  try {
    cpSync(fixture, dir, { recursive: true });
    writeFileSync(join(dir, "chat_template.jinja"), "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}");
    const tok = await loadTokenizer(dir);
    assert.equal(tok.applyChatTemplate([{ role: "user", content: "hi" }]), "[user]hi<|im_end|>");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("passes special tokens and extra variables to the template; tools stay undefined", () => {
  const { tokenizerJson } = buildByteLevelTokenizer();
  const config = {
    bos_token: "<|endoftext|>",
    eos_token: "<|im_end|>",
    chat_template: "{{ bos_token }}|{{ eos_token }}|{{ tools is defined }}|{{ add_generation_prompt }}|{{ flavour }}",
  };
  const tok = new HfTokenizer(tokenizerJson, config);
  assert.equal(
    tok.applyChatTemplate([], { addGenerationPrompt: true, variables: { flavour: "x" } }),
    "<|endoftext|>|<|im_end|>|false|true|x",
  );
});

test("clear errors for a missing, malformed or model-less tokenizer.json", async () => {
  const dir = tempDir();
  try {
    await assert.rejects(loadTokenizer(dir), /no tokenizer\.json in/);
    writeFileSync(join(dir, "tokenizer.json"), "{ not json");
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json is not valid JSON/);
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0" }));
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: no "model" with a "type"/);
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify({ model: { type: "NoSuchModel" } }));
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: model type "NoSuchModel" is not supported/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a model without a chat template fails, or falls back to ChatML with a warning when asked", async () => {
  const dir = tempDir();
  try {
    const { tokenizerJson, tokenizerConfig } = buildByteLevelTokenizer();
    const { chat_template: _dropped, ...withoutTemplate } = tokenizerConfig;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(withoutTemplate));
    await assert.rejects(loadTokenizer(dir), /has no chat template/);

    const warnings: string[] = [];
    const tok = await loadTokenizer(dir, { chatMLFallback: true, warn: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /using plain ChatML/);
    assert.equal(
      tok.applyChatTemplate([{ role: "user", content: "hi" }], { addGenerationPrompt: true }),
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a template that does not parse is reported when loading", () => {
  const { tokenizerJson } = buildByteLevelTokenizer();
  assert.throws(() => new HfTokenizer(tokenizerJson, { chat_template: "{% for m in messages %}" }), /chat template does not parse/);
});

test("a special token missing from the vocabulary is reported", () => {
  const { tokenizerJson } = buildByteLevelTokenizer();
  assert.throws(() => new HfTokenizer(tokenizerJson, { eos_token: "</s>" }), /eos_token "<\/s>" is not in the vocabulary/);
});
