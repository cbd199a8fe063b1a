import { test } from "node:test";
import assert from "node:assert/strict";
import { buildByteLevelTokenizer, byteLevelAlphabet, trainBpeMerges, writeTokenizerFiles } from "../../src/data/tiny-tokenizer.js";
import { HfTokenizer, loadTokenizer } from "../../src/hf/tokenizer.js";
import { tempDir } from "../helpers.js";

function tiny(options: Parameters<typeof buildByteLevelTokenizer>[0] = {}): HfTokenizer {
  const { tokenizerJson, tokenizerConfig } = buildByteLevelTokenizer(options);
  return new HfTokenizer(tokenizerJson, tokenizerConfig);
}

// Texts that a byte-level tokenizer must reproduce exactly.
const AWKWARD_TEXTS = [
  "",
  "Hello, world!",
  "P(A \\cap B) = \\frac{3}{8}, so the answer is $\\boxed{\\dfrac{3}{8}}$.",
  "emoji 😀👍🏽 and 👨‍👩‍👧 family",
  "中文，日本語のテキスト، العربية",
  "e\u0301 (decomposed) vs é (composed)", // no normalizer: kept as written
  "tabs\tand\r\nwindows lines\n\n\n  trailing   ",
  "\u0000\u0001\u007f control bytes",
  "almost special: <|im_start <|im_end| <|endoftext",
  "  leading spaces, I'LL don't we've",
];

test("the byte alphabet is GPT-2's: a bijection with printable bytes first", () => {
  const alphabet = byteLevelAlphabet();
  assert.equal(alphabet.length, 256);
  assert.equal(new Set(alphabet.map((e) => e.byte)).size, 256);
  assert.equal(new Set(alphabet.map((e) => e.symbol)).size, 256);
  assert.deepEqual(alphabet[0], { byte: 0x21, symbol: "!" });
  assert.deepEqual(alphabet[188], { byte: 0, symbol: "\u0100" });
  assert.deepEqual(alphabet[198], { byte: 10, symbol: "Ċ" });
  assert.deepEqual(alphabet[220], { byte: 32, symbol: "Ġ" });
  assert.deepEqual(alphabet[255], { byte: 0xad, symbol: "Ń" });
});

test("a merge-free tokenizer gives one id per byte, as worked out from the byte map", () => {
  const tok = tiny();
  // Printable ASCII: id = byte − 0x21.  "a"=0x61 → 64, " "=byte 32 → 188+32 = 220.
  assert.deepEqual(tok.encode("a b"), [64, 220, 65]);
  // "\t"=9 → 197, "\n"=10 → 198.
  assert.deepEqual(tok.encode("x\t\n"), [87, 197, 198]);
  // "é" = C3 A9: 0xC3 → 94 + 12 + (0xC3 − 0xAE) = 127; 0xA9 → 94 + (0xA9 − 0xA1) = 102.
  assert.deepEqual(tok.encode("é"), [127, 102]);
  // "😀" = F0 9F 98 80: F0 → 94+12+66 = 172; 9F (=159) → 221 + (159−127) = 253; 98 → 246; 80 → 222.
  assert.deepEqual(tok.encode("😀"), [172, 253, 246, 222]);
  assert.deepEqual(tok.encode("<|endoftext|><|im_start|><|im_end|>"), [256, 257, 258]);
  assert.equal(tok.vocabSize, 259);
});

test("encode → decode is the identity on awkward UTF-8, with and without merges", () => {
  const corpus = AWKWARD_TEXTS.concat(["the theory of the thing", "\\frac{1}{2} + \\frac{1}{3}"]);
  for (const tok of [tiny(), tiny({ corpus, numMerges: 40 })]) {
    for (const text of AWKWARD_TEXTS) assert.equal(tok.decode(tok.encode(text)), text, JSON.stringify(text));
  }
});

test("encode → decode is the identity on pseudo-random code points", () => {
  const tok = tiny({ corpus: AWKWARD_TEXTS, numMerges: 20 });
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let round = 0; round < 50; round++) {
    let text = "";
    for (let i = 0; i < 30; i++) {
      let cp = next() % 0x110000;
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x20; // lone surrogates are not valid UTF-8
      text += String.fromCodePoint(cp);
    }
    assert.equal(tok.decode(tok.encode(text)), text);
  }
});

test("BPE training learns the most frequent pair first and stops when no pair repeats", () => {
  assert.deepEqual(trainBpeMerges(["ab ab ab"], 1), [["a", "b"]]);
  // " ab" pieces: Ġ a b ×2 and a b ×1 → "a b" (3) first, then "Ġ ab" (2).
  assert.deepEqual(trainBpeMerges(["ab ab ab"], 5), [
    ["a", "b"],
    ["Ġ", "ab"],
  ]);
  assert.deepEqual(trainBpeMerges(["xyz"], 5), []);
  const merges = trainBpeMerges(["the cat the hat the mat"], 3);
  assert.deepEqual(merges, trainBpeMerges(["the cat the hat the mat"], 3), "deterministic");
});

test("learned merges become ids 256…, before the special tokens, and shorten encodings", () => {
  const tok = tiny({ corpus: ["ab ab ab"], numMerges: 2 });
  assert.equal(tok.tokenToId("ab"), 256);
  assert.equal(tok.tokenToId("Ġab"), 257);
  assert.equal(tok.tokenToId("<|endoftext|>"), 258);
  assert.equal(tok.tokenToId("<|im_end|>"), 260);
  assert.deepEqual(tok.encode("ab ab"), [256, 257]);
});

test("the config is Qwen2.5-style ChatML; a 3-message conversation renders exactly", () => {
  const tok = tiny();
  assert.equal(tok.eos?.content, "<|im_end|>");
  assert.equal(tok.pad?.content, "<|endoftext|>");
  assert.equal(tok.bos, undefined);
  const text = tok.applyChatTemplate([
    { role: "system", content: "You are terse." },
    { role: "user", content: "P(heads)?" },
    { role: "assistant", content: "1/2" },
  ]);
  assert.equal(
    text,
    "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nP(heads)?<|im_end|>\n<|im_start|>assistant\n1/2<|im_end|>\n",
  );
  // No system prompt is baked into the template.
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: "q" }], { addGenerationPrompt: true }),
    "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
  );
});

test("written files load back through loadTokenizer with the same behaviour", async () => {
  const dir = tempDir("tiny");
  {
    const files = buildByteLevelTokenizer({ corpus: AWKWARD_TEXTS, numMerges: 10 });
    await writeTokenizerFiles(dir, files);
    const loaded = await loadTokenizer(dir);
    const inMemory = new HfTokenizer(files.tokenizerJson, files.tokenizerConfig);
    for (const text of AWKWARD_TEXTS) assert.deepEqual(loaded.encode(text), inMemory.encode(text));
    assert.equal(loaded.vocabSize, 256 + 10 + 3);
  }
});

test("numMerges must be a whole number", () => {
  assert.throws(() => buildByteLevelTokenizer({ numMerges: -1 }), /numMerges/);
  assert.throws(() => buildByteLevelTokenizer({ numMerges: 1.5 }), /numMerges/);
});
