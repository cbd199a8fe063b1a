import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DatasetError, loadDataset, parseDataset } from "../../src/data/dataset.js";
import { PROBABILITY_DATA } from "../../src/data/probability/datasets.js";
import { tempDir } from "../helpers.js";

const dir = tempDir("dataset");

let fileCount = 0;
function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, `${fileCount++}-${name}`);
  writeFileSync(path, content);
  return path;
}
const jsonl = (...items: unknown[]) => `${items.map((x) => JSON.stringify(x)).join("\n")}\n`;

/** Loading must fail with one DatasetError whose message matches every pattern. */
function assertFails(path: string, ...patterns: RegExp[]): void {
  assert.throws(
    () => loadDataset(path),
    (e: unknown) => {
      assert.ok(e instanceof DatasetError, `expected a DatasetError, got ${e}`);
      assert.ok(e.message.startsWith(path), `message should start with the file name: ${e.message}`);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    },
  );
}

describe("loadDataset: shapes", () => {
  it("reads a JSON array of {question, answer} and keeps the boxed answer", () => {
    const path = file(
      "qa.json",
      JSON.stringify([
        { question: "Flip a coin. P(heads)?", answer: "One of two outcomes.\nTherefore \\boxed{\\frac{1}{2}}." },
        { question: "What is 2 + 2?", answer: "4" },
        { question: "Explain variance.", answer: "It measures spread." },
      ]),
    );
    const samples = loadDataset(path);
    assert.deepEqual(samples[0], {
      messages: [
        { role: "user", content: "Flip a coin. P(heads)?" },
        { role: "assistant", content: "One of two outcomes.\nTherefore \\boxed{\\frac{1}{2}}." },
      ],
      answer: "\\frac{1}{2}",
    });
    assert.equal(samples[1]!.answer, "4", "a reply that is only a number is its own answer");
    assert.ok(!("answer" in samples[2]!), "no answer when the reply has none");
  });

  it("reads JSONL with every shape mixed, blank lines, CRLF and a BOM", () => {
    const text = `\uFEFF${[
      JSON.stringify({ instruction: "Add the numbers.", input: "2 and 3", output: "\\boxed{5}" }),
      "",
      JSON.stringify({ instruction: "Say hi.", input: "", output: "hi" }),
      JSON.stringify({ instruction: "Say bye.", input: null, output: "bye" }),
      JSON.stringify({ instruction: "No input field.", output: "ok" }),
      JSON.stringify({ prompt: "P(six)?", completion: " \\boxed{1/6}" }),
      JSON.stringify({
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "P(tails)?" },
          { role: "assistant", content: "\\boxed{0.5}" },
        ],
        id: 7,
      }),
    ].join("\r\n")}\r\n`;
    const samples = loadDataset(file("mixed.jsonl", text));
    assert.equal(samples.length, 6);
    assert.deepEqual(samples[0], {
      messages: [
        { role: "user", content: "Add the numbers.\n\n2 and 3" },
        { role: "assistant", content: "\\boxed{5}" },
      ],
      answer: "5",
    });
    assert.equal(samples[1]!.messages[0]!.content, "Say hi.", "an empty input adds nothing");
    assert.equal(samples[2]!.messages[0]!.content, "Say bye.");
    assert.equal(samples[3]!.messages[0]!.content, "No input field.");
    assert.deepEqual(samples[4], {
      messages: [
        { role: "user", content: "P(six)?" },
        { role: "assistant", content: " \\boxed{1/6}" },
      ],
      answer: "1/6",
    });
    assert.deepEqual(
      samples[5]!.messages.map((m) => m.role),
      ["system", "user", "assistant"],
    );
    assert.equal(samples[5]!.answer, "0.5");
  });

  it("reads ShareGPT conversations (human/gpt or user/assistant, a system turn or a system field) as messages", () => {
    const samples = loadDataset(
      file(
        "sharegpt.jsonl",
        jsonl(
          {
            conversations: [
              { from: "system", value: "Be brief." },
              { from: "human", value: "P(two heads in two flips)?" },
              { from: "gpt", value: "\\boxed{\\frac{1}{4}}" },
            ],
          },
          {
            system: "Show your work.",
            conversations: [
              { from: "user", value: "Roll a die. P(six)?" },
              { from: "assistant", value: "One face of six: \\boxed{\\frac{1}{6}}" },
              { from: "human", value: "And P(not six)?" },
              { from: "gpt", value: "5/6" },
            ],
          },
        ),
      ),
    );
    assert.deepEqual(samples[0], {
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "P(two heads in two flips)?" },
        { role: "assistant", content: "\\boxed{\\frac{1}{4}}" },
      ],
      answer: "\\frac{1}{4}",
    });
    assert.deepEqual(
      samples[1].messages.map((m) => m.role),
      ["system", "user", "assistant", "user", "assistant"],
    );
    assert.equal(samples[1].messages[0].content, "Show your work.");
    assert.equal(samples[1].answer, "5/6", "the answer is the last reply's");
  });

  it("loads the shipped probability data with an exact answer for every item", () => {
    for (const name of [PROBABILITY_DATA.trainFile, PROBABILITY_DATA.evalFile]) {
      const samples = loadDataset(new URL(`../../../${name}`, import.meta.url).pathname);
      assert.ok(samples.length >= 81);
      for (const s of samples) assert.match(s.answer ?? "", /^-?\d+(\/\d+)?$/);
    }
  });
});

describe("loadDataset: hostile input", () => {
  it("missing file", () => assertFails(join(dir, "nope.json"), /not found/));

  it("a directory", () => {
    const sub = join(dir, "a-directory.json");
    mkdirSync(sub);
    assertFails(sub, /a-directory\.json: is a folder, not the data set file/);
  });

  it("a FIFO or a device is refused at once instead of read forever", (t) => {
    assertFails("/dev/zero", /^\/dev\/zero: is a device, not the data set file/);
    const fifo = join(dir, "pipe.jsonl");
    if (spawnSync("mkfifo", [fifo]).status !== 0) return t.skip("mkfifo is not available");
    assertFails(fifo, /pipe\.jsonl: is a named pipe \(FIFO\), not the data set file/);
  });

  it("keys named like Object's own properties are plain keys", () => {
    const items = '[{"__proto__": {"question": "Q", "answer": "A"}}]';
    assertFails(file("proto.json", items), /item 1: matches no known shape \(its keys: __proto__\)/);
    assertFails(
      file("tostring.json", '[{"toString": "Q", "valueOf": "A"}]'),
      /item 1: matches no known shape \(its keys: toString, valueOf\)/,
    );
    assertFails(
      file("role.json", '[{"messages": [{"content": "Q"}, {"role": "assistant", "content": "A"}]}]'),
      /messages\[0\]: "role" must be/,
    );
    const ok = loadDataset(file("extra.json", '[{"question": "Q", "answer": "3", "hasOwnProperty": 1, "constructor": 2}]'));
    assert.deepEqual(
      ok[0].messages.map((m) => m.content),
      ["Q", "3"],
    );
    const input = loadDataset(file("proto-input.json", '[{"instruction": "I", "output": "O", "__proto__": {"input": 5}}]'));
    assert.equal(input[0].messages[0].content, "I");
  });

  it("empty file and whitespace-only file", () => {
    assertFails(file("empty.json", ""), /empty/);
    assertFails(file("blank.jsonl", "\n  \n\t\n"), /empty/);
    assertFails(file("bom-only.json", "\uFEFF"), /empty/);
  });

  it("invalid UTF-8, with the line it is on", () => {
    const bytes = Buffer.concat([
      Buffer.from('{"question": "ok", "answer": "1"}\n{"question": "caf'),
      Buffer.from([0xe9]),
      Buffer.from('", "answer": "2"}\n'),
    ]);
    assertFails(file("latin1.jsonl", bytes), /not valid UTF-8/, /line 2/);
  });

  it("malformed JSON array, with its line", () => {
    assertFails(
      file("broken.json", '[\n  {"question": "a", "answer": "b"},\n  {"question": "c" "answer": "d"}\n]'),
      /malformed JSON/,
      /line 3/,
    );
    assertFails(file("trailing-comma.json", '[{"question": "a", "answer": "b"},]'), /malformed JSON/);
  });

  it("malformed JSONL, with its line", () => {
    assertFails(file("broken.jsonl", `${jsonl({ question: "a", answer: "b" })}{"question": "c", "answer": }\n`), /line 2: malformed JSON/);
  });

  it("a pretty-printed single object is neither an array nor JSONL", () => {
    assertFails(
      file("object.json", JSON.stringify({ question: "a", answer: "b" }, null, 2)),
      /line 1: malformed JSON/,
      /one whole object per line/,
    );
  });

  it("items that are not objects", () => {
    assertFails(file("strings.json", '["a", "b"]'), /item 1: each item must be a JSON object, got string/, /Accepted shapes/);
    assertFails(file("nulls.jsonl", jsonl({ question: "a", answer: "b" }, null)), /line 2: each item must be a JSON object, got null/);
  });

  it("an item matching no known shape names the accepted shapes", () => {
    const path = file("unknown.json", JSON.stringify([{ question: "a", answer: "b" }, { text: "hello" }]));
    assertFails(
      path,
      /item 2: matches no known shape \(its keys: text\)/,
      /\{question, answer\}/,
      /\{instruction, input\?, output\}/,
      /\{prompt, completion\}/,
      /\{messages/,
    );
    assertFails(file("half.jsonl", jsonl({ question: "only a question" })), /line 1: matches no known shape \(its keys: question\)/);
  });

  it("an item with the fields of two shapes is ambiguous", () => {
    assertFails(
      file("both.json", JSON.stringify([{ question: "a", answer: "b", prompt: "c", completion: "d" }])),
      /ambiguous/,
      /\{question, answer\} and \{prompt, completion\}/,
    );
  });

  it("wrong field types", () => {
    assertFails(
      file("number.json", JSON.stringify([{ question: "a", answer: 42 }])),
      /item 1: field "answer" must be a string, got number/,
    );
    assertFails(
      file("input.jsonl", jsonl({ instruction: "a", input: ["x"], output: "b" })),
      /line 1: field "input" must be a string, got array/,
    );
    assertFails(file("messages-type.json", JSON.stringify([{ messages: "hi" }])), /field "messages" must be an array, got string/);
    assertFails(file("message-item.json", JSON.stringify([{ messages: ["hi"] }])), /messages\[0\] must be an object/);
    assertFails(
      file("content.json", JSON.stringify([{ messages: [{ role: "user", content: 5 }] }])),
      /messages\[0\]: field "content" must be a string, got number/,
    );
  });

  it("bad roles and conversations without a user or assistant turn", () => {
    assertFails(
      file(
        "role.json",
        JSON.stringify([
          {
            messages: [
              { role: "human", content: "hi" },
              { role: "assistant", content: "yo" },
            ],
          },
        ]),
      ),
      /messages\[0\]: "role" must be "system", "user" or "assistant", got "human"/,
    );
    assertFails(file("no-assistant.json", JSON.stringify([{ messages: [{ role: "user", content: "hi" }] }])), /no assistant message/);
    assertFails(file("no-user.json", JSON.stringify([{ messages: [{ role: "assistant", content: "hi" }] }])), /no user message/);
    assertFails(file("no-messages.json", JSON.stringify([{ messages: [] }])), /"messages" is empty/);
  });

  it("malformed ShareGPT: one line naming the turn and what is wrong", () => {
    const one = (name: string, item: unknown, pattern: RegExp) => assertFails(file(name, jsonl(item)), pattern);
    one(
      "sg-role.jsonl",
      { conversations: [{ from: "bot", value: "hi" }] },
      /line 1: conversations\[0\]: "from" must be "system", "human", "user", "gpt" or "assistant", got "bot"$/,
    );
    one(
      "sg-shape.jsonl",
      { conversations: [{ role: "user", content: "hi" }] },
      /line 1: conversations\[0\]: a \{role, content\} turn: put those in "messages", or write \{from, value\} here$/,
    );
    one(
      "sg-value.jsonl",
      { conversations: [{ from: "human", value: 3 }] },
      /line 1: conversations\[0\]: field "value" must be a string, got number$/,
    );
    one("sg-string.jsonl", { conversations: "human: hi" }, /line 1: field "conversations" must be an array, got string$/);
    one("sg-turn.jsonl", { conversations: ["hi"] }, /line 1: conversations\[0\] must be an object \{from, value\}, got string$/);
    one(
      "sg-no-gpt.jsonl",
      { conversations: [{ from: "human", value: "hi" }] },
      /line 1: "conversations" has no assistant message to learn from$/,
    );
    one(
      "sg-system.jsonl",
      {
        system: ["x"],
        conversations: [
          { from: "human", value: "q" },
          { from: "gpt", value: "a" },
        ],
      },
      /line 1: field "system" must be a string, got array$/,
    );
    one(
      "sg-both.jsonl",
      { messages: [], conversations: [] },
      /line 1: ambiguous, it has the fields of \{messages\} and ShareGPT \{conversations\}; keep one shape$/,
    );
  });

  it("empty strings", () => {
    assertFails(file("empty-q.json", JSON.stringify([{ question: "", answer: "b" }])), /item 1: field "question" is empty/);
    assertFails(
      file("blank-out.jsonl", jsonl({ instruction: "a", output: "b" }, { instruction: "a", output: "   " })),
      /line 2: field "output" is empty/,
    );
    assertFails(
      file("empty-content.json", JSON.stringify([{ messages: [{ role: "user", content: "" }] }])),
      /messages\[0\]: field "content" is empty/,
    );
  });

  it("an empty data set", () => {
    assertFails(file("none.json", "[]"), /no items/);
    assertFails(file("none-spaced.json", "  [ ]  \n"), /no items/);
  });
});

describe("parseDataset", () => {
  it("names the given source in errors", () => {
    assert.throws(() => parseDataset("[1]", "inline"), /^DatasetError: inline: item 1/);
    assert.equal(parseDataset('{"prompt": "a", "completion": "b"}', "inline").length, 1);
  });
});
