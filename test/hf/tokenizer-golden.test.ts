// Parity of svdlora's tokenizer with the reference (transformers 5.17 / tokenizers 0.23): the ids,
// chat renderings and chat ids in test/fixtures/golden/tokenizers/expected.json were written by
// scripts/golden/make_golden.py; the texts and the conversation below are that script's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadTokenizer } from "../../src/hf/tokenizer.js";
import type { ChatMessage } from "../../src/data/types.js";

// Compiled to dist/test/hf/; the fixtures stay in the source tree.
const fixtures = (rel: string) => fileURLToPath(new URL(`../../../test/fixtures/${rel}`, import.meta.url));

interface GoldenEntry {
  encode: Record<string, number[]>;
  chat?: string;
  chat_prompt?: string;
  chat_ids?: number[];
}

const expected = JSON.parse(readFileSync(fixtures("golden/tokenizers/expected.json"), "utf8")) as Record<string, GoldenEntry>;

// Where make_golden.py found each tokenizer (hf-bpe was trained by the script, the others are in the repo).
const DIRS: Record<string, string> = {
  "hf-bpe": fixtures("golden/tokenizers/hf-bpe"),
  "qwen-style": fixtures("tokenizers/qwen-style"),
  "tiny-prob": new URL("../../../models/tiny-prob", import.meta.url).pathname, // the embedded model's own
};

const TEXTS = [
  "Hello world",
  "The probability of 3 heads in 5 flips is \\boxed{5/16}.",
  "  two  spaces\nnew line\ttab",
  "émoji 😀 and 数学",
  "P(A|B) = P(B|A)P(A)/P(B)",
  "<|im_start|>user\nhi<|im_end|>",
  "",
];

const CONVERSATION: ChatMessage[] = [
  { role: "system", content: "Please reason step by step, and put your final answer within \\boxed{}." },
  { role: "user", content: "A fair coin is flipped twice. What is P(two heads)?" },
  { role: "assistant", content: "Each flip is heads with probability 1/2, so \\boxed{1/4}." },
];

test("the golden file covers exactly the tokenizers and texts of make_golden.py", () => {
  // Guards the loops below: a golden file with fewer names or texts would make them check less.
  assert.deepEqual(Object.keys(expected).sort(), Object.keys(DIRS).sort());
  for (const [name, entry] of Object.entries(expected)) {
    assert.deepEqual(Object.keys(entry.encode).sort(), [...TEXTS].sort(), name);
    // Both tokenizers have a chat template, so the script wrote all three chat fields.
    assert.equal(typeof entry.chat, "string", `${name}: chat`);
    assert.equal(typeof entry.chat_prompt, "string", `${name}: chat_prompt`);
    assert.ok(Array.isArray(entry.chat_ids) && entry.chat_ids.length > 0, `${name}: chat_ids`);
  }
});

for (const [name, entry] of Object.entries(expected)) {
  const dir = DIRS[name];

  test(`${name}: encode gives the reference ids for every text, and decode round-trips`, async () => {
    assert.ok(dir, `no fixture directory known for golden tokenizer ${name}`);
    const tok = await loadTokenizer(dir);
    for (const text of TEXTS) {
      const want = entry.encode[text];
      const ids = tok.encode(text, { addSpecialTokens: false });
      assert.deepEqual(ids, want, `${name}: encode(${JSON.stringify(text)})`);
      assert.equal(tok.decode(ids), text, `${name}: decode(encode(${JSON.stringify(text)}))`);
    }
  });

  test(`${name}: chat template renders the reference strings`, async () => {
    const tok = await loadTokenizer(dir);
    assert.equal(tok.applyChatTemplate(CONVERSATION), entry.chat, `${name}: full conversation`);
    assert.equal(
      tok.applyChatTemplate(CONVERSATION.slice(0, 2), { addGenerationPrompt: true }),
      entry.chat_prompt,
      `${name}: prompt with generation prompt`,
    );
  });

  test(`${name}: the rendered chat encodes to the reference ids and decodes back`, async () => {
    const tok = await loadTokenizer(dir);
    const want = entry.chat_ids!;
    // The reference string, and svdlora's own rendering, both give the reference ids.
    assert.deepEqual(tok.encode(entry.chat!, { addSpecialTokens: false }), want, `${name}: encode(reference chat)`);
    const ids = tok.encode(tok.applyChatTemplate(CONVERSATION), { addSpecialTokens: false });
    assert.deepEqual(ids, want, `${name}: encode(svdlora's chat)`);
    // Special tokens are single ids here, not split into pieces.
    const imStart = tok.tokenToId("<|im_start|>");
    const imEnd = tok.tokenToId("<|im_end|>");
    assert.equal(ids.filter((id) => id === imStart).length, 3, `${name}: <|im_start|> count`);
    assert.equal(ids.filter((id) => id === imEnd).length, 3, `${name}: <|im_end|> count`);
    assert.equal(tok.decode(ids), entry.chat, `${name}: decode(chat ids)`);
  });
}
