import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  ChatTemplateLimitError,
  IGNORE_INDEX,
  QWEN25_MATH_SYSTEM_PROMPT,
  blockCausalMask,
  encodePrompt,
  formatSample,
  formatSamples,
  labelsOf,
  packBatches,
  padBatch,
} from "../../src/data/format.js";
import { buildByteLevelTokenizer } from "../../src/data/tiny-tokenizer.js";
import type { Encoded, Sample } from "../../src/data/types.js";
import { HfTokenizer, loadTokenizer } from "../../src/hf/tokenizer.js";

const fixture = fileURLToPath(new URL("../../../test/fixtures/tokenizers/qwen-style", import.meta.url));
const { tokenizerJson, tokenizerConfig } = buildByteLevelTokenizer();
const tok = new HfTokenizer(tokenizerJson, tokenizerConfig); // one id per byte: easy to count
const IM_END = tok.tokenToId("<|im_end|>")!;

const qa = (question: string, answer: string): Sample => ({
  messages: [
    { role: "user", content: question },
    { role: "assistant", content: answer },
  ],
});
const counted = (e: Encoded) => e.ids.filter((_, i) => e.lossMask[i]);
const bytes = (s: string) => new TextEncoder().encode(s).length;

test("exactly the reply and its closing <|im_end|> count in the loss", () => {
  const { encoded } = formatSample(qa("What is 1+1?", "It is 2."), tok);
  const prompt = "<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n";
  // Byte tokenizer: prompt = 3 special tokens + its other bytes; reply = 8 bytes + <|im_end|>; then "\n".
  const promptTokens = 3 + bytes(prompt.replace(/<\|im_(start|end)\|>/g, ""));
  assert.equal(encoded.ids.length, promptTokens + 8 + 1 + 1);
  assert.deepEqual(encoded.lossMask, [...new Array(promptTokens).fill(false), ...new Array(9).fill(true), false]);
  assert.equal(tok.decode(counted(encoded)), "It is 2.<|im_end|>");
  assert.equal(counted(encoded).at(-1), IM_END);
  assert.equal(encoded.truncated, false);
});

test("a default system prompt is prepended unless the sample has one; it is masked out", () => {
  const sample = qa("Q", "A");
  const withDefault = formatSample(sample, tok, { systemPrompt: QWEN25_MATH_SYSTEM_PROMPT }).encoded;
  assert.equal(
    tok.decode(withDefault.ids),
    `<|im_start|>system\n${QWEN25_MATH_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n`,
  );
  assert.equal(tok.decode(counted(withDefault)), "A<|im_end|>");
  const own: Sample = { messages: [{ role: "system", content: "S" }, ...sample.messages] };
  assert.ok(tok.decode(formatSample(own, tok, { systemPrompt: "ignored" }).encoded.ids).startsWith("<|im_start|>system\nS<|im_end|>"));
});

test("every assistant turn of a multi-turn conversation counts, nothing else", () => {
  const sample: Sample = {
    messages: [
      { role: "user", content: "u1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "u2" },
      { role: "assistant", content: "a2" },
    ],
  };
  const { encoded } = formatSample(sample, tok);
  assert.equal(tok.decode(counted(encoded)), "a1<|im_end|>a2<|im_end|>");
  // The two counted runs are separate: the second user turn between them is masked.
  const runs = encoded.lossMask.reduce((n, m, i) => n + (m && !encoded.lossMask[i - 1] ? 1 : 0), 0);
  assert.equal(runs, 2);
});

test("with Qwen2.5-Math's template (which adds its own system prompt) the mask is still the reply", async () => {
  const qwen = await loadTokenizer(fixture);
  const result = formatSample(qa("the question", "the answer"), qwen);
  assert.equal(result.offsetFallback, false);
  assert.ok(qwen.decode(result.encoded.ids).startsWith(`<|im_start|>system\n${QWEN25_MATH_SYSTEM_PROMPT}<|im_end|>`));
  assert.equal(qwen.decode(counted(result.encoded)), "the answer<|im_end|>");
});

test("when a token straddles the prompt/reply boundary, character offsets place the mask", async () => {
  // The fixture merges "\n\n" into one token (259): the prompt's final "\n" joins a reply starting with "\n".
  const qwen = await loadTokenizer(fixture);
  const result = formatSample(qa("Q", "\nX"), qwen);
  assert.equal(result.offsetFallback, true);
  const reply = counted(result.encoded);
  assert.deepEqual(reply, [259, qwen.tokenToId("X"), qwen.tokenToId("<|im_end|>")]);
  const { stats } = formatSamples([qa("Q", "\nX"), qa("Q", "X")], qwen);
  assert.equal(stats.offsetFallbacks, 1);
});

test("maxLength truncates at the end and counts; samples left without reply tokens are dropped", () => {
  const samples = [qa("short", "ok"), qa("short", "a long answer that will be cut"), qa("a very long question ".repeat(5), "x")];
  const full = formatSamples(samples, tok);
  assert.equal(full.stats.truncated, 0);
  const lengths = full.encoded.map((e) => e.ids.length);
  const maxLength = lengths[0] + 3; // fits the first, cuts the second inside its reply, the third inside its prompt
  assert.ok(lengths[1] > maxLength && lengths[2] > maxLength);

  const { encoded, stats } = formatSamples(samples, tok, { maxLength });
  assert.equal(stats.samples, 3);
  assert.equal(stats.truncated, 2);
  assert.equal(stats.droppedEmpty, 1);
  assert.equal(stats.kept, 2);
  assert.equal(stats.longest, Math.max(...lengths));
  assert.deepEqual(
    encoded.map((e) => e.truncated),
    [false, true],
  );
  assert.equal(encoded[1].ids.length, maxLength);
  assert.equal(encoded[1].lossMask.length, maxLength);
  assert.equal(stats.tokens, lengths[0] + maxLength);
  assert.equal(stats.lossTokens, counted(encoded[0]).length + counted(encoded[1]).length);

  const kept = formatSamples(samples, tok, { maxLength, keepEmpty: true });
  assert.equal(kept.encoded.length, 3);
  assert.equal(counted(kept.encoded[2]).length, 0);
  assert.throws(() => formatSamples(samples, tok, { maxLength: 0 }), /maxLength/);
});

test("a sample without an assistant message is an error naming the sample", () => {
  assert.throws(
    () => formatSamples([qa("q", "a"), { messages: [{ role: "user", content: "q" }] }], tok),
    /sample 1: .*no assistant message/,
  );
});

test("encodePrompt gives the prompt ids: a token prefix of the formatted sample", () => {
  const sample = qa("Why?", "Because.");
  const { encoded } = formatSample(sample, tok, { systemPrompt: "S" });
  const prompt = encodePrompt(sample, tok, { systemPrompt: "S" });
  assert.deepEqual(encoded.ids.slice(0, prompt.length), prompt);
  assert.equal(encoded.lossMask.indexOf(true), prompt.length);
  assert.ok(tok.decode(prompt).endsWith("<|im_start|>assistant\n"));
});

test("labels are the ids where the loss counts and -100 elsewhere (the model shifts)", () => {
  assert.deepEqual(labelsOf({ ids: [5, 6, 7, 8], lossMask: [false, false, true, true], truncated: false }), [
    IGNORE_INDEX,
    IGNORE_INDEX,
    7,
    8,
  ]);
});

const enc = (ids: number[], mask: boolean[]): Encoded => ({ ids, lossMask: mask, truncated: false });

test("padBatch pads on the right to the longest sample", () => {
  const batch = padBatch([enc([1, 2, 3], [false, true, true]), enc([4], [true])], 0);
  assert.deepEqual(batch.inputIds, [
    [1, 2, 3],
    [4, 0, 0],
  ]);
  assert.deepEqual(batch.labels, [
    [-100, 2, 3],
    [4, -100, -100],
  ]);
  assert.deepEqual(batch.attentionMask, [
    [1, 1, 1],
    [1, 0, 0],
  ]);
  const rounded = padBatch([enc([1, 2, 3], [true, true, true])], 9, { padToMultipleOf: 4 });
  assert.deepEqual(rounded.inputIds, [[1, 2, 3, 9]]);
  assert.deepEqual(rounded.labels, [[1, 2, 3, -100]]);
  assert.throws(() => padBatch([], 0), /empty batch/);
});

test("packBatches fills packs in order, restarts positions and marks boundaries", () => {
  const samples = [
    enc([10, 11, 12], [false, true, true]),
    enc([20, 21], [true, true]), // a first token that counts: packing must still ignore it
    enc([30, 31, 32, 33], [false, false, true, true]),
    enc([40], [true]),
  ];
  const packs = packBatches(samples, 6);
  assert.equal(packs.length, 2);
  const [first, second] = packs;
  assert.deepEqual(first.inputIds, [[10, 11, 12, 20, 21]]);
  assert.deepEqual(first.labels, [[-100, 11, 12, -100, 21]]);
  assert.deepEqual(first.positionIds, [[0, 1, 2, 0, 1]]);
  assert.deepEqual(first.cuSeqlens, [0, 3, 5]);
  assert.equal(first.maxSeqlen, 3);
  assert.deepEqual(first.sampleBoundaries, [
    { sampleIndex: 0, start: 0, end: 3 },
    { sampleIndex: 1, start: 3, end: 5 },
  ]);
  assert.deepEqual(second.inputIds, [[30, 31, 32, 33, 40]]);
  assert.deepEqual(second.positionIds, [[0, 1, 2, 3, 0]]);
  assert.deepEqual(second.cuSeqlens, [0, 4, 5]);
  assert.deepEqual(
    second.sampleBoundaries.map((b) => b.sampleIndex),
    [2, 3],
  );
  assert.throws(() => packBatches(samples, 3), /sample 2 has 4 tokens, more than maxTokens = 3/);
});

test("blockCausalMask is causal within each sample and blocks attention across samples", () => {
  const mask = blockCausalMask([0, 2, 5]);
  const rows = Array.from({ length: 5 }, (_, i) => Array.from(mask.slice(i * 5, i * 5 + 5)));
  assert.deepEqual(rows, [
    [1, 0, 0, 0, 0],
    [1, 1, 0, 0, 0],
    [0, 0, 1, 0, 0],
    [0, 0, 1, 1, 0],
    [0, 0, 1, 1, 1],
  ]);
  assert.throws(() => blockCausalMask([1, 2]), /start at 0/);
});

test("packing formatted samples loses no loss token (each sample starts with prompt tokens)", () => {
  const { encoded } = formatSamples([qa("a", "b"), qa("cc", "dd"), qa("eee", "fff")], tok);
  const packs = packBatches(encoded, 1000);
  assert.equal(packs.length, 1);
  const labelled = packs[0].labels[0].filter((l) => l !== IGNORE_INDEX).length;
  assert.equal(
    labelled,
    encoded.reduce((n, e) => n + counted(e).length, 0),
  );
  assert.equal(packs[0].cuSeqlens.at(-1), packs[0].inputIds[0].length);
});

test("a sample that cannot fit --max-length is dropped before it is rendered or tokenized", () => {
  const huge = qa(`${"lorem ipsum ".repeat(900_000)}?`, "42"); // 10.8 MB
  const start = performance.now();
  const { encoded, stats } = formatSamples([huge, qa("Q", "A")], tok, { maxLength: 64 });
  const ms = performance.now() - start;
  assert.equal(stats.droppedTooLong, 1);
  assert.equal(stats.kept, 1);
  assert.equal(encoded.length, 1);
  assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
  // The bound is maxLength × the longest token: a sample just within it is formatted (and truncated) as before.
  const within = qa("x".repeat(64 * tok.maxTokenChars - 1), "A");
  assert.equal(formatSamples([within], tok, { maxLength: 64, keepEmpty: true }).stats.droppedTooLong, 0);
});

test("a chat template past its limits stops the data set with one line naming the sample", () => {
  const hostile = new HfTokenizer(tokenizerJson, {
    ...tokenizerConfig,
    chat_template: "{% for m in messages %}{% for i in range(100000000) %}x{% endfor %}{% endfor %}",
  });
  assert.throws(
    () => formatSamples([qa("Q", "A"), qa("R", "B")], hostile),
    (e: Error) => e instanceof ChatTemplateLimitError && /^sample 0: tokenizer: the chat template calls range\(100000000\)/.test(e.message),
  );
  // Only on the prefix renders (the full conversation renders): still not swallowed as a skipped turn.
  const prefixOnly = new HfTokenizer(tokenizerJson, {
    ...tokenizerConfig,
    chat_template: "{% if add_generation_prompt %}{% for i in range(100000000) %}{% endfor %}{% endif %}{{ messages | length }}",
  });
  assert.throws(() => formatSamples([qa("Q", "A")], prefixOnly), ChatTemplateLimitError);
});
