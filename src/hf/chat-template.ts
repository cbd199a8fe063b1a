// Chat templates are Jinja programs that come with a model's files, rendered for every sample.
// A broken or hostile one must end with one line, not hang (nested loops) or abort the process
// out of memory (range(100000000), a string doubled in a loop). So each rendering runs under a
// budget, checked by hooks on @huggingface/jinja's interpreter (active only while we render):
// - time: RENDER_LIMITS.milliseconds of wall time, checked every few evaluation steps;
// - size: every value the template makes is measured (strings by length, lists and dicts by the
//   total size of what they hold, so a list of references to one big string counts in full);
// - the few built-ins whose output can be far larger than their input are checked before they
//   run, however they are reached: range(), replace() (also as a filter), indent(width), tojson(indent).
// Within the limits a rendering costs the same as without the hooks, within noise (chat-template.test.ts).
import { Interpreter, Template } from "@huggingface/jinja";
import { ChatTemplateLimitError } from "../data/format.js";

export const RENDER_LIMITS = {
  /** Wall time for one rendering (a real chat template takes well under a millisecond). */
  milliseconds: 3000,
  /** Characters in any string the template makes, the output included; lists and dicts count what they hold. */
  chars: 1 << 23,
  /** Elements of any list (range() included), so one loop step stays short. */
  items: 100_000,
  /** Characters of the template itself (real ones have a few thousand). */
  sourceChars: 1 << 20,
};

// ---- the parts of @huggingface/jinja's runtime the hooks see ----

interface JinjaNode {
  type: string;
  [field: string]: unknown;
}
interface JinjaValue {
  type: string;
  value: unknown;
}
type Arguments = [JinjaValue[], Map<string, JinjaValue>];
/** Interpreter methods that @huggingface/jinja declares private; the hooks wrap them. */
interface InterpreterInternals {
  evaluate(node: JinjaNode | undefined, env: unknown): JinjaValue;
  applyFilter(operand: JinjaValue, filter: JinjaNode, env: unknown): JinjaValue;
  evaluateArguments(args: JinjaNode[], env: unknown): Arguments;
}

interface Measure {
  size: number;
  depth: number;
  frozen: boolean;
}

/** The budget of the rendering in progress; undefined outside ChatTemplate.render. */
let active: Budget | undefined;

class Budget {
  private readonly deadline = performance.now() + RENDER_LIMITS.milliseconds;
  private steps = 0;
  /** Sizes of lists and dicts already measured (they do not change, except namespaces, which are never cached). */
  private readonly sizes = new WeakMap<object, Measure>();

  constructor(private readonly where: string) {}

  fail(problem: string): never {
    throw new ChatTemplateLimitError(`${this.where}: the chat template ${problem}`);
  }

  tick(): void {
    if ((++this.steps & 0x3f) === 0 && performance.now() > this.deadline)
      this.fail(`did not finish within ${RENDER_LIMITS.milliseconds / 1000} s (a loop that does not end?)`);
  }

  /** The value, after checking its size. */
  checked(value: JinjaValue): JinjaValue {
    if (value.type === "StringValue") {
      if ((value.value as string).length > RENDER_LIMITS.chars) this.tooLarge((value.value as string).length);
    } else if (typeof value.value === "object" && value.value !== null) {
      if (Array.isArray(value.value) && value.value.length > RENDER_LIMITS.items)
        this.fail(`made a list of ${value.value.length} items (at most ${RENDER_LIMITS.items})`);
      const { size } = this.measure(value);
      if (size > RENDER_LIMITS.chars) this.tooLarge(size);
    }
    return value;
  }

  private tooLarge(size: number): never {
    return this.fail(`made a value of ${size} characters (at most ${RENDER_LIMITS.chars})`);
  }

  /** Total size (characters and items) and nesting depth of a value; `frozen` when it holds no namespace (those change). */
  measure(value: JinjaValue): Measure {
    const v = value.value;
    if (typeof v === "string") return { size: v.length, depth: 0, frozen: true };
    if (typeof v !== "object" || v === null) return { size: 1, depth: 0, frozen: true };
    const cached = this.sizes.get(v);
    if (cached) return cached;
    const m: Measure = { size: 1, depth: 0, frozen: value.type !== "NamespaceValue" };
    const add = (child: JinjaValue, keyLength = 0) => {
      const c = this.measure(child);
      m.size += c.size + keyLength;
      m.depth = Math.max(m.depth, c.depth + 1);
      m.frozen &&= c.frozen;
    };
    if (Array.isArray(v)) for (const child of v as JinjaValue[]) add(child);
    else if (v instanceof Map) for (const [key, child] of v as Map<string, JinjaValue>) add(child, key.length);
    if (m.frozen) this.sizes.set(v, m);
    return m;
  }

  /** range(stop) / range(start, stop[, step]), refused before it runs when it would make too many items. */
  checkRange(args: JinjaValue[]): void {
    const n = args.map((a) => (typeof a.value === "number" ? a.value : Number.NaN));
    const [start, stop, step] = n.length === 1 ? [0, n[0], 1] : [n[0], n[1], n[2] ?? 1];
    const count = step === 0 ? 0 : Math.ceil((stop - start) / step);
    if (count > RENDER_LIMITS.items) this.fail(`calls range(${n.join(", ")}): ${count} items (at most ${RENDER_LIMITS.items})`);
  }

  /** s.replace(old, new[, count]), refused before it runs when the result could be too long. */
  checkReplace(subject: JinjaValue, [args, kwargs]: Arguments): void {
    if (subject.type !== "StringValue") return;
    const text = (i: number, name: string) => {
      const v = args[i] ?? kwargs.get(name);
      return typeof v?.value === "string" ? v.value : "";
    };
    const count = args[2] ?? kwargs.get("count");
    const s = subject.value as string;
    const [from, to] = [text(0, "old"), text(1, "new")];
    let times = Math.floor(s.length / Math.max(from.length, 1)) + 1;
    if (typeof count?.value === "number" && count.value >= 0) times = Math.min(times, count.value);
    const longest = s.length + times * to.length;
    if (longest > RENDER_LIMITS.chars) this.fail(`calls replace() on ${s.length} characters with one that could make ${longest}`);
  }

  /** indent(width) and tojson(indent=n) add width characters per line or per level: refused when that is too much. */
  checkPadding(filter: string, operand: JinjaValue, [args, kwargs]: Arguments): void {
    const width = (filter === "indent" ? (args[0] ?? kwargs.get("width")) : kwargs.get("indent"))?.value;
    const pad = typeof width === "number" ? Math.max(width, 0) : typeof width === "string" ? width.length : 0;
    const { size, depth } = this.measure(operand);
    const lines = typeof operand.value === "string" ? operand.value.split("\n").length : size;
    const longest = size * 6 + lines * pad * (depth + 1);
    if (longest > RENDER_LIMITS.chars) this.fail(`calls ${filter}() with a width of ${width}, which could make ${longest} characters`);
  }
}

// ---- the hooks ----

const proto = Interpreter.prototype as unknown as InterpreterInternals;
for (const name of ["evaluate", "applyFilter", "evaluateArguments"] as const) {
  if (typeof proto[name] !== "function")
    throw new Error(`@huggingface/jinja has no Interpreter.${name} any more: update src/hf/chat-template.ts`);
}
const original = { evaluate: proto.evaluate, filter: proto.applyFilter };

/** The call arguments as a built-in receives them (keyword arguments last, as one KeywordArgumentsValue), split. */
const splitArguments = (args: JinjaValue[]): Arguments => {
  const last = args.at(-1);
  if (last?.type !== "KeywordArgumentsValue") return [args, new Map()];
  return [args.slice(0, -1), last.value as Map<string, JinjaValue>];
};

/** The same built-in, checked by `check` before each call, however it is called later (directly, or kept in a variable). */
function guarded(fn: JinjaValue, check: (args: JinjaValue[]) => void): JinjaValue {
  const call = fn.value as (args: JinjaValue[], scope: unknown) => JinjaValue;
  const FunctionValue = fn.constructor as new (value: typeof call) => JinjaValue;
  return new FunctionValue((args, scope) => {
    check(args);
    return call(args, scope);
  });
}

proto.evaluate = function (this: InterpreterInternals, node, env) {
  const budget = active;
  if (!budget) return original.evaluate.call(this, node, env);
  budget.tick();
  const value = budget.checked(original.evaluate.call(this, node, env));
  if (value.type !== "FunctionValue" || !node) return value;
  if (node.type === "Identifier" && node.value === "range") return guarded(value, (args) => budget.checkRange(args));
  if (node.type === "MemberExpression") {
    const property = node.computed ? this.evaluate(node.property as JinjaNode, env).value : (node.property as JinjaNode).value;
    if (property !== "replace") return value;
    const subject = this.evaluate(node.object as JinjaNode, env);
    return guarded(value, (args) => budget.checkReplace(subject, splitArguments(args)));
  }
  return value;
};

proto.applyFilter = function (this: InterpreterInternals, operand, filter, env) {
  const budget = active;
  const callee = filter.type === "CallExpression" ? (filter.callee as JinjaNode) : undefined;
  const name = budget && callee?.type === "Identifier" ? callee.value : undefined;
  if (budget && (name === "replace" || name === "indent" || name === "tojson")) {
    const args = this.evaluateArguments(filter.args as JinjaNode[], env);
    if (name === "replace") budget.checkReplace(operand, args);
    else budget.checkPadding(name, operand, args);
  }
  return original.filter.call(this, operand, filter, env);
};

/** A chat template, parsed once and rendered within RENDER_LIMITS; `where` names its model in messages. */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    private readonly where: string,
  ) {
    if (source.length > RENDER_LIMITS.sourceChars)
      throw new Error(`${where}: the chat template is ${source.length} characters long (at most ${RENDER_LIMITS.sourceChars})`);
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new Error(`${where}: the chat template does not parse: ${oneLine(e)}`);
    }
  }

  /** Renders with these variables; throws ChatTemplateLimitError past a limit, an Error for a template error. */
  render(variables: Record<string, unknown>): string {
    active = new Budget(this.where);
    try {
      return this.template.render(variables);
    } catch (e) {
      if (e instanceof ChatTemplateLimitError) throw e;
      if (e instanceof RangeError) throw new ChatTemplateLimitError(`${this.where}: the chat template ran out of room: ${oneLine(e)}`);
      throw new Error(`chat template failed to render: ${oneLine(e)}`);
    } finally {
      active = undefined;
    }
  }
}

const oneLine = (e: unknown) =>
  String((e as Error)?.message ?? e)
    .replace(/\s+/g, " ")
    .slice(0, 300);
