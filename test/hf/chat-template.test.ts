// Chat templates render as before within the limits; hostile ones stop with one line, quickly.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { Template } from "@huggingface/jinja";
import { ChatTemplateLimitError } from "../../src/data/format.js";
import { ChatTemplate, RENDER_LIMITS } from "../../src/hf/chat-template.js";

const qwenTemplate: string = JSON.parse(
  readFileSync(new URL("../../../test/fixtures/tokenizers/qwen-style/tokenizer_config.json", import.meta.url), "utf8"),
).chat_template[0].template;

const messages = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "What is 1/2 + 1/4?" },
  { role: "assistant", content: "It is \\boxed{3/4}." },
  { role: "user", content: "And 1/3 + 1/6?" },
];
const variables = { messages, add_generation_prompt: true, eos_token: "<|im_end|>" };

const render = (source: string, vars: Record<string, unknown> = variables) => new ChatTemplate(source, "models/m").render(vars);
function limited(source: string, message: RegExp, vars?: Record<string, unknown>): number {
  const start = performance.now();
  assert.throws(
    () => render(source, vars),
    (e: Error) => e instanceof ChatTemplateLimitError && message.test(e.message) && e.message.startsWith("models/m: the chat template "),
    source,
  );
  return performance.now() - start;
}
/** A template line that makes `big`, a string of 2^n characters, by doubling. */
const doubled = (n: number) =>
  `{% set ns = namespace(s='x') %}{% for i in range(${n}) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{% set big = ns.s %}`;

describe("chat templates within the limits", () => {
  it("render exactly as @huggingface/jinja renders them", () => {
    const templates = [
      qwenTemplate,
      "{% for m in messages %}{{ m.role | upper }}: {{ m.content | replace('1/', 'one over ') | indent(2) }}\n{% endfor %}",
      "{{ messages | tojson(indent=2) }}{% for i in range(3) %}{{ i }}{% endfor %}{{ messages[1].content.replace('+', 'plus', 1) }}",
      "{% set ns = namespace(n=0) %}{% for m in messages if m.role == 'user' %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
    ];
    for (const source of templates) assert.equal(render(source), new Template(source).render(variables), source);
  });

  it("keep a template's own errors as errors, not limits", () => {
    assert.throws(
      () => render("{{ raise_exception('Conversation roles must alternate') }}"),
      (e: Error) =>
        !(e instanceof ChatTemplateLimitError) && /chat template failed to render: Conversation roles must alternate/.test(e.message),
    );
  });

  it("cost little on the common path (the hooks time is printed)", () => {
    const plain = new Template(qwenTemplate);
    const bounded = new ChatTemplate(qwenTemplate, "m");
    const time = (f: () => string) => {
      const start = performance.now();
      for (let i = 0; i < 500; i++) f();
      return (performance.now() - start) / 500;
    };
    time(() => bounded.render(variables)); // warm up
    const [without, within] = [time(() => plain.render(variables)), time(() => bounded.render(variables))];
    console.log(
      `# one rendering of the Qwen2.5 template: ${(without * 1000).toFixed(1)} µs plain, ${(within * 1000).toFixed(1)} µs within limits`,
    );
    assert.ok(within < without * 3 + 0.05, `${within} ms vs ${without} ms`);
  });
});

describe("hostile chat templates stop with one line", () => {
  const saved = RENDER_LIMITS.milliseconds;
  after(() => {
    RENDER_LIMITS.milliseconds = saved;
  });

  it("range(100000000) is refused before it runs", () => {
    const ms = limited("{% for i in range(100000000) %}x{% endfor %}", /calls range\(100000000\): 100000000 items \(at most 100000\)/);
    assert.ok(ms < 500, `${ms} ms`);
    limited("{{ range(0, 10 ** 9, 3) | length }}", /calls range\(0, 1000000000, 3\): 333333334 items/);
    limited("{% set r = range %}{{ r(100000000) | length }}", /calls range\(100000000\)/);
  });

  it("nested loops stop at the time limit", () => {
    RENDER_LIMITS.milliseconds = 300;
    try {
      const ms = limited(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% if a == b %}{% endif %}{% endfor %}{% endfor %}",
        /did not finish within 0\.3 s \(a loop that does not end\?\)/,
      );
      // 10^10 iterations would take hours; the bound leaves room for a loaded machine (2.2 s seen at load 6 on 2 cores).
      assert.ok(ms < 10_000, `${ms} ms`);
    } finally {
      RENDER_LIMITS.milliseconds = saved; // the next tests run with the usual limit whatever happened here
    }
  });

  it("a string doubled in a loop stops at the size limit", () => {
    limited(doubled(40), /made a value of \d+ characters \(at most 8388608\)/);
  });

  it("a list of references to one big string counts in full", () => {
    limited(
      `${doubled(20)}{% set ns2 = namespace(l=[]) %}{% for i in range(100) %}{% set ns2.l = ns2.l + [big] %}{% endfor %}{{ ns2.l | join('') }}`,
      /made a value of \d+ characters \(at most 8388608\)/,
    );
  });

  it("replace(), indent(width) and tojson(indent) are checked before they run", () => {
    limited(`${doubled(12)}{{ big.replace('', big) }}`, /calls replace\(\) on 4096 characters with one that could make 16785408/);
    limited(`${doubled(12)}{{ big | replace('x', big) }}`, /calls replace\(\) on 4096 characters/);
    limited(`${doubled(12)}{{ big['replace']('', big) }}`, /calls replace\(\) on 4096 characters/);
    limited(`${doubled(12)}{% set f = big.replace %}{{ f('', big) }}`, /calls replace\(\) on 4096 characters/);
    assert.equal(render("{% set f = 'a-b'.replace %}{{ f('-', '+') }}{{ 'a-b'['replace']('-', '') }}"), "a+bab");
    limited("{{ 'a\\nb\\nc' | indent(100000000) }}", /calls indent\(\) with a width of 100000000/);
    limited("{{ messages | tojson(indent=100000000) }}", /calls tojson\(\) with a width of 100000000/);
    assert.equal(render("{{ 'a\\nb' | indent(2) }}"), "a\n  b");
  });

  it("nesting too deep for the stack stops", () => {
    limited(
      "{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l | tojson }}",
      /ran out of room: Maximum call stack size exceeded/,
    );
  });

  it("a template over the size limit or one that does not parse is refused when loaded", () => {
    assert.throws(
      () => new ChatTemplate("x".repeat(RENDER_LIMITS.sourceChars + 1), "models/m"),
      /models\/m: the chat template is 1048577 characters long/,
    );
    assert.throws(() => new ChatTemplate("{% for %}", "models/m"), /models\/m: the chat template does not parse/);
  });
});
