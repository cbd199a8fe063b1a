// Regular expressions read from files (adapter_config.json patterns, tokenizer.json splits) are
// compiled only when their matching cost is bounded. JavaScript has no regex timeout: a pattern
// like (a+)+$ backtracks exponentially and hangs the process. So every pattern is parsed first
// and refused when it could be slow:
// - repetition of a group that itself repeats or alternates ((a+)+, (a|a)*): exponential;
// - backreferences: no known bound;
// - more than MAX_DEGREE repetitions one after another on any path (.*.*.*.*x): the cost grows as
//   the input length to that power, so it is capped, and so is the input (module names are short;
//   samples are bounded before they are tokenized);
// - more than maxBranches ways through the alternations, more than MAX_PATTERN_LENGTH characters.
// Over an input of n characters a pattern then takes at most about branches · (n+1)^degree steps
// (regexWork), which callers can also cap in total.
// Adapter patterns use the subset of Python's `re` syntax that JavaScript reads the same way
// (PEFT matches them with Python); anything outside it is refused rather than guessed at.

/** "python": adapter_config.json patterns (PEFT's re.fullmatch / re.match). "tokenizer": tokenizer.json (Oniguruma) patterns. */
export type RegexDialect = "python" | "tokenizer";

export const MAX_PATTERN_LENGTH = 1000;
/** Repetitions in sequence on one path through the pattern (the degree of the polynomial cost). */
export const MAX_DEGREE = 3;
/** Paths through the pattern's alternations (repetitions aside). A tokenizer's split pattern lists many cheap literals. */
const MAX_BRANCHES: Record<RegexDialect, number> = { python: 16, tokenizer: 256 };
/** The largest count in {n,m}. */
const MAX_COUNT = 1000;

interface Cost {
  /** Longest run of repetitions along one path. */
  degree: number;
  /** Paths through alternations. */
  branches: number;
  /** Matches exactly one character (a repetition of it is linear). */
  single: boolean;
  /** Holds only single-character matchers in sequence: a repetition of it is still linear. */
  plain: boolean;
  zeroWidth: boolean;
}

const ATOM: Cost = { degree: 0, branches: 1, single: true, plain: true, zeroWidth: false };
const ASSERTION: Cost = { degree: 0, branches: 1, single: false, plain: false, zeroWidth: true };

class Refused extends Error {}

/** A pattern's cost figures, or the reason it is refused. */
export type RegexCheck = { problem: string } | { problem?: undefined; degree: number; branches: number };

/** Checks a pattern before it is compiled (see the top of this file). */
export function checkRegex(source: string, dialect: RegexDialect): RegexCheck {
  if (source.length > MAX_PATTERN_LENGTH) return { problem: `it is ${source.length} characters long (at most ${MAX_PATTERN_LENGTH})` };
  let cost: Cost;
  try {
    cost = new Parser(source, dialect).parse();
  } catch (error) {
    if (error instanceof Refused) return { problem: error.message };
    throw error;
  }
  if (cost.degree > MAX_DEGREE)
    return {
      problem: `it has ${cost.degree} repetitions one after another (at most ${MAX_DEGREE}: the matching time grows as the input length to that power)`,
    };
  const maxBranches = MAX_BRANCHES[dialect];
  if (cost.branches > maxBranches) return { problem: `it has ${cost.branches} ways through its alternations (at most ${maxBranches})` };
  if (dialect === "python") {
    try {
      new RegExp(source);
    } catch (error) {
      return { problem: `it is not a valid regular expression (${(error as Error).message})` };
    }
  }
  return { degree: cost.degree, branches: cost.branches };
}

/** About how many steps a checked pattern takes at most on an input of n characters: branches · (n+1)^degree. */
export const regexWork = (check: { degree: number; branches: number }, n: number): number => check.branches * (n + 1) ** check.degree;

/**
 * Compiles a pattern from an adapter config (Python syntax) whose final form is wrap(source), e.g.
 * PEFT's `^(.*\.)?(…)$`; the check applies to that final form. Throws one line when refused:
 * "<where>: <what> <pattern> is refused: <why>". Returns the regex and its regexWork figures.
 */
export function compileFileRegex(
  source: string,
  where: string,
  what: string,
  wrap: (s: string) => string = (s) => s,
): { regex: RegExp; degree: number; branches: number } {
  const own = checkRegex(source, "python");
  const check = own.problem === undefined ? checkRegex(wrap(source), "python") : own;
  if (check.problem !== undefined) {
    const around = own.problem === undefined ? ` (as ${JSON.stringify(wrap(source))})` : "";
    throw new Error(`${where}: ${what} ${JSON.stringify(source)} is refused${around}: ${check.problem}`);
  }
  return { regex: new RegExp(wrap(source)), degree: check.degree, branches: check.branches };
}

const hexDigits = (n: number) => new RegExp(`^[0-9a-fA-F]{${n}}`);

/** A recursive-descent reader of the pattern that computes its Cost and refuses what it does not know. */
class Parser {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly dialect: RegexDialect,
  ) {}

  parse(): Cost {
    const cost = this.alternation();
    if (this.i < this.s.length) throw new Refused(`unbalanced ")" at position ${this.i}`);
    return cost;
  }

  private refuse(what: string): never {
    throw new Refused(`${what}, at position ${this.i}`);
  }

  private alternation(): Cost {
    const options = [this.sequence()];
    while (this.s[this.i] === "|") {
      this.i++;
      options.push(this.sequence());
    }
    if (options.length === 1) return options[0];
    return {
      degree: Math.max(...options.map((o) => o.degree)),
      branches: options.reduce((n, o) => n + o.branches, 0),
      single: false,
      plain: false,
      zeroWidth: false,
    };
  }

  private sequence(): Cost {
    const items: Cost[] = [];
    while (this.i < this.s.length && this.s[this.i] !== "|" && this.s[this.i] !== ")") items.push(this.quantified());
    if (items.length === 1) return items[0];
    return {
      degree: items.reduce((n, c) => n + c.degree, 0),
      branches: items.reduce((n, c) => n * c.branches, 1),
      single: false,
      plain: items.every((c) => c.single),
      zeroWidth: items.every((c) => c.zeroWidth),
    };
  }

  private quantified(): Cost {
    const atom = this.atom();
    const q = this.quantifier();
    if (!q) return atom;
    if (atom.zeroWidth) this.refuse("a quantifier on an assertion or empty group");
    if (this.s[this.i] === "?") this.i++; // lazy: same paths, other order
    if (this.s[this.i] === "+") this.refuse("a possessive quantifier");
    if (q.max <= 1) {
      // optional: one more path, no repetition
      return { ...atom, branches: atom.branches * 2, single: false, plain: false };
    }
    if (!atom.single && !atom.plain) this.refuse("repeating a group that repeats or alternates (exponential backtracking)");
    const ranged = q.min !== q.max;
    return { degree: ranged ? 1 : 0, branches: 1, single: false, plain: false, zeroWidth: false };
  }

  /** The quantifier at the cursor, if any: {min, max} with max = Infinity when unbounded. */
  private quantifier(): { min: number; max: number } | undefined {
    const c = this.s[this.i];
    if (c === "*" || c === "+" || c === "?") {
      this.i++;
      return { min: c === "+" ? 1 : 0, max: c === "?" ? 1 : Number.POSITIVE_INFINITY };
    }
    if (c !== "{") return undefined;
    const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i));
    if (!m) this.refuse('a "{" that is not a quantifier {n}, {n,} or {n,m} (escape it as \\{)');
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
    if (min > MAX_COUNT || (Number.isFinite(max) && max > MAX_COUNT)) this.refuse(`a count above ${MAX_COUNT}`);
    if (max < min) this.refuse("a quantifier {n,m} with m < n");
    this.i += m[0].length;
    return { min, max };
  }

  private atom(): Cost {
    const c = this.s[this.i];
    if (c === "(") return this.group();
    if (c === "[") return this.charClass();
    if (c === "\\") return this.escape(false);
    if (c === "*" || c === "+" || c === "?" || c === "{") this.refuse("a quantifier with nothing to repeat");
    this.i++;
    if (c === "^" || c === "$") return ASSERTION;
    return ATOM; // a literal or "."
  }

  private group(): Cost {
    this.i++; // (
    let lookaround = false;
    if (this.s[this.i] === "?") {
      const rest = this.s.slice(this.i, this.i + 4);
      if (rest.startsWith("?:")) this.i += 2;
      else if (rest.startsWith("?=") || rest.startsWith("?!")) {
        this.i += 2;
        lookaround = true;
      } else if (this.dialect === "tokenizer" && (rest.startsWith("?<=") || rest.startsWith("?<!"))) {
        this.i += 3;
        lookaround = true;
      } else if (this.dialect === "tokenizer" && /^\?[imsx]+:/.test(this.s.slice(this.i, this.i + 8))) {
        this.i = this.s.indexOf(":", this.i) + 1; // scoped flags, e.g. (?i:'s|'t)
      } else this.refuse(`the group syntax "(${rest}…"`);
    }
    const body = this.alternation();
    if (this.s[this.i] !== ")") this.refuse('a group without its ")"');
    this.i++;
    if (lookaround) return { ...ASSERTION, degree: body.degree, branches: body.branches };
    return body;
  }

  private charClass(): Cost {
    this.i++; // [
    if (this.s[this.i] === "^") this.i++;
    if (this.s[this.i] === "]") this.refuse('a "]" first in a character class (Python and JavaScript read it differently)');
    while (this.i < this.s.length && this.s[this.i] !== "]") {
      if (this.s[this.i] === "\\") this.escape(true);
      else if (this.s[this.i] === "[" && this.s[this.i + 1] === ":") this.refuse("a POSIX class [:name:]");
      else this.i++;
    }
    if (this.s[this.i] !== "]") this.refuse('a character class without its "]"');
    this.i++;
    return ATOM;
  }

  private escape(inClass: boolean): Cost {
    this.i++; // backslash
    const c = this.s[this.i];
    if (c === undefined) this.refuse("a pattern ending in a backslash");
    this.i++;
    if ("dDwWsS".includes(c) || "nrtfv".includes(c)) return ATOM;
    if (c === "b" || c === "B") return inClass ? this.refuse("\\b inside a character class") : ASSERTION;
    if (c === "x" || c === "u") {
      const n = c === "x" ? 2 : 4;
      if (!hexDigits(n).test(this.s.slice(this.i))) this.refuse(`\\${c} without ${n} hex digits`);
      this.i += n;
      return ATOM;
    }
    if ((c === "p" || c === "P") && this.dialect === "tokenizer") {
      const m = /^\{[A-Za-z_=]+\}/.exec(this.s.slice(this.i));
      if (!m) this.refuse(`\\${c} without a {Property}`);
      this.i += m[0].length;
      return ATOM;
    }
    if (/[0-9]/.test(c)) this.refuse("a backreference or octal escape");
    if (/[A-Za-z]/.test(c)) this.refuse(`the escape \\${c}`);
    return ATOM; // an escaped punctuation character stands for itself
  }
}
