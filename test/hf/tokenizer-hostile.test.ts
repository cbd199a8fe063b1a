// Damaged or hostile tokenizer files: each refused in one line naming the file, before any text is tokenized.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { loadTokenizer } from "../../src/hf/tokenizer.js";
import { tempDir } from "../helpers.js";

const fixture = fileURLToPath(new URL("../../../test/fixtures/tokenizers/qwen-style", import.meta.url));
const root = tempDir("tok-hostile");
const good = JSON.parse(readFileSync(join(fixture, "tokenizer.json"), "utf8"));
const goodConfig = JSON.parse(readFileSync(join(fixture, "tokenizer_config.json"), "utf8"));

let count = 0;
/** A copy of the fixture with tokenizer.json (and optionally tokenizer_config.json / config.json) replaced. */
function modelDir(tokenizer: unknown, extra: Record<string, unknown> = {}): string {
  const dir = join(root, `m${count++}`);
  cpSync(fixture, dir, { recursive: true });
  writeFileSync(join(dir, "tokenizer.json"), typeof tokenizer === "string" ? tokenizer : JSON.stringify(tokenizer));
  for (const [name, content] of Object.entries(extra))
    writeFileSync(join(dir, name), typeof content === "string" ? content : JSON.stringify(content));
  return dir;
}
const withModel = (patch: Record<string, unknown>) => ({ ...good, model: { ...good.model, ...patch } });
async function refused(dir: string, message: RegExp): Promise<void> {
  await assert.rejects(loadTokenizer(dir), (e: Error) => {
    assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

describe("tokenizer.json", () => {
  it("an empty vocabulary is refused", async () => {
    await refused(modelDir(withModel({ vocab: {}, merges: [] })), /m\d+\/tokenizer\.json: the vocabulary \(model\.vocab\) is empty$/);
  });

  it("merges whose parts or result are not in the vocabulary are refused, as the Rust library does", async () => {
    await refused(
      modelDir(withModel({ merges: [...good.model.merges, "Ġ zz"] })),
      /model\.merges\[\d+\] "Ġ zz": "zz" is not in the vocabulary \(damaged merges\?\)/,
    );
    await refused(
      modelDir(withModel({ merges: ["t he", "h e"] })),
      /model\.merges\[1\] "h e": "he" is not in the vocabulary|model\.merges\[0\] "t he": "the" is not in the vocabulary/,
    );
    await refused(modelDir(withModel({ merges: ["a b c"] })), /model\.merges\[0\] is "a b c", not a pair of tokens/);
    await refused(modelDir(withModel({ merges: [[1, 2]] })), /model\.merges\[0\] is \[1,2\], not a pair of tokens/);
  });

  it("ids that are not token ids are refused", async () => {
    await refused(modelDir(withModel({ vocab: { ...good.model.vocab, x: -1 } })), /model\.vocab "x" has the id -1, not a token id/);
    await refused(modelDir(withModel({ vocab: { ...good.model.vocab, x: 1.5 } })), /model\.vocab "x" has the id 1\.5/);
    await refused(
      modelDir({ ...good, added_tokens: [{ id: "7", content: "<x>" }] }),
      /added_tokens\[0\] must have an "id" and a "content"/,
    );
    await refused(
      modelDir(good, { "tokenizer_config.json": { ...goodConfig, added_tokens_decoder: JSON.parse('{"__proto__": {"content": "<x>"}}') } }),
      /tokenizer_config\.json: "added_tokens_decoder" has the key "__proto__", not a token id/,
    );
  });

  it("a split pattern that backtracks exponentially is refused before anything is tokenized", async () => {
    const hostile = { ...good, pre_tokenizer: { type: "Split", pattern: { Regex: "(\\s+)+$" }, behavior: "Isolated", invert: false } };
    await refused(
      modelDir(hostile),
      /the pattern "\(\\\\s\+\)\+\$" at pre_tokenizer\.pattern is refused: repeating a group that repeats or alternates/,
    );
  });

  it("vocab_size in config.json smaller than the tokenizer's ids is refused, naming both files", async () => {
    await refused(
      modelDir(good, { "config.json": { model_type: "qwen2", vocab_size: 100 } }),
      /m\d+\/tokenizer\.json has token ids up to 262, but .*m\d+\/config\.json has vocab_size 100: the model has no embedding for them/,
    );
    await loadTokenizer(modelDir(good, { "config.json": { model_type: "qwen2", vocab_size: 263 } }));
    await loadTokenizer(modelDir(good, { "config.json": "{ damaged" }));
  });

  it("keys named like Object's own properties are tokens like any other", async () => {
    const names = ["toString", "__proto__", "hasOwnProperty", "constructor"];
    const first = (await loadTokenizer(fixture)).vocabSize;
    const vocab = Object.fromEntries([...Object.entries(good.model.vocab), ...names.map((n, i) => [n, first + i])]);
    const tok = await loadTokenizer(modelDir(withModel({ vocab })));
    assert.equal(tok.tokenToId("toString"), first);
    assert.equal(tok.tokenToId("__proto__"), first + 1);
    assert.equal(tok.idToToken(first + 2), "hasOwnProperty");
    assert.equal(tok.tokenToId("valueOf"), undefined, "not a token: no inherited function leaks in");
    const ids = tok.encode("valueOf toString", { addSpecialTokens: false });
    assert.ok(
      ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize),
      `${ids}`,
    );
  });

  it("a FIFO or a folder given as tokenizer.json is refused at once", async (t) => {
    const dir = join(root, "fifo");
    cpSync(fixture, dir, { recursive: true });
    rmSync(join(dir, "tokenizer.json"));
    if (spawnSync("mkfifo", [join(dir, "tokenizer.json")]).status !== 0) return t.skip("mkfifo is not available");
    await refused(dir, /fifo\/tokenizer\.json: is a named pipe \(FIFO\), not the tokenizer file/);
    const folder = join(root, "folder");
    cpSync(fixture, folder, { recursive: true });
    rmSync(join(folder, "tokenizer_config.json"));
    mkdirSync(join(folder, "tokenizer_config.json"));
    await refused(folder, /folder\/tokenizer_config\.json: is a folder, not the tokenizer config/);
  });

  it("maxTokenChars is the longest vocabulary entry", async () => {
    const tok = await loadTokenizer(fixture);
    const longest = Math.max(
      ...Object.keys(good.model.vocab).map((k) => k.length),
      ...good.added_tokens.map((t: { content: string }) => t.content.length),
    );
    assert.equal(tok.maxTokenChars, longest);
  });
});
