// Checking final answers: take the last \boxed{…} of a solution and compare it exactly, as a
// rational, with the expected answer. Anything that does not parse cleanly counts as wrong.
import { Rational } from "./probability/rational.js";

/** The trimmed contents of the last \boxed{…} (or \fbox{…}) in text; null if none, or if its braces never close. */
export function extractBoxed(text: string): string | null {
  const re = /\\(?:boxed|fbox)\s*\{/g;
  let last = -1;
  for (let m = re.exec(text); m; m = re.exec(text)) last = m.index + m[0].length;
  if (last < 0) return null;
  let depth = 1;
  for (let i = last; i < text.length; i++) {
    const c = text[i];
    if (c === "\\")
      i++; // \{ and \} are literal braces, not grouping
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return text.slice(last, i).trim();
  }
  return null;
}

/** Cleans LaTeX and typography that do not change the value. */
function normalize(text: string): string {
  let s = text.trim();
  s = s
    .replace(/\\[()[\]]/g, "")
    .replace(/\\\$/g, "")
    .replace(/\$/g, ""); // math delimiters, currency
  s = s.replace(/\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}/g, "$1");
  s = s
    .replace(/\\(?:left|right)\b/g, "")
    .replace(/\\[,;:! ]/g, "")
    .replace(/~/g, "");
  s = s.replace(/\\[dt]frac/g, "\\frac").replace(/[−–]/g, "-");
  s = s.replace(/\s+/g, "");
  return s.replace(/\.$/, ""); // a sentence's full stop after the answer
}

/** A tiny recursive-descent parser over: numbers, a/b, \frac{a}{b}, \frac12, (…), {…}, signs, %. */
class Parser {
  private pos = 0;
  constructor(private readonly s: string) {}

  parse(): Rational | null {
    const value = this.expression();
    return value && this.pos === this.s.length ? value : null;
  }

  private expression(): Rational | null {
    let value = this.signed();
    while (value && this.s[this.pos] === "/") {
      this.pos++;
      const den = this.signed();
      if (!den || den.isZero()) return null;
      value = value.div(den);
    }
    if (value && (this.s.startsWith("\\%", this.pos) || this.s[this.pos] === "%")) {
      this.pos += this.s[this.pos] === "%" ? 1 : 2;
      value = value.div(new Rational(100));
    }
    return value;
  }

  private signed(): Rational | null {
    let negative = false;
    while (this.s[this.pos] === "-" || this.s[this.pos] === "+") {
      if (this.s[this.pos] === "-") negative = !negative;
      this.pos++;
    }
    const value = this.primary();
    return value && negative ? value.neg() : value;
  }

  private primary(): Rational | null {
    const c = this.s[this.pos];
    if (c === "(" || c === "{") {
      this.pos++;
      const value = this.expression();
      if (this.s[this.pos] !== (c === "(" ? ")" : "}")) return null;
      this.pos++;
      return value;
    }
    if (this.s.startsWith("\\frac", this.pos)) {
      this.pos += 5;
      const num = this.fracArgument(),
        den = num && this.fracArgument();
      return num && den && !den.isZero() ? num.div(den) : null;
    }
    return this.number();
  }

  /** {expr}, or a single digit as in \frac12. */
  private fracArgument(): Rational | null {
    const c = this.s[this.pos];
    if (c === "{") return this.primary();
    if (c !== undefined && /\d/.test(c)) {
      this.pos++;
      return new Rational(Number(c));
    }
    return null;
  }

  private number(): Rational | null {
    const m = /^(\d*)(?:\.(\d+))?/.exec(this.s.slice(this.pos));
    if (!m || m[0] === "" || (m[1] === "" && m[2] === undefined)) return null;
    this.pos += m[0].length;
    const whole = BigInt(m[1] || "0"),
      frac = m[2] ?? "";
    const scale = 10n ** BigInt(frac.length);
    return new Rational(whole * scale + BigInt(frac || "0"), scale);
  }
}

/** Parses an answer such as "3/8", "\dfrac{3}{8}", "-0.375", "$\frac{1}{2}$", "37.5\%"; null if unparsable. */
export function parseAnswer(text: string): Rational | null {
  const s = normalize(text);
  return s === "" ? null : new Parser(s).parse();
}

/** The value of the last \boxed{…} in a solution; null if there is none or it does not parse. */
export function extractAnswer(text: string): Rational | null {
  const boxed = extractBoxed(text);
  return boxed === null ? null : parseAnswer(boxed);
}

/** Whether two answer strings are the same number; false when either does not parse. */
export function answersMatch(a: string, b: string): boolean {
  const x = parseAnswer(a),
    y = parseAnswer(b);
  return x !== null && y !== null && x.equals(y);
}

/** Whether a model's output ends in a boxed answer equal to the expected one. */
export function checkAnswer(output: string, expected: string | Rational): boolean {
  const got = extractAnswer(output);
  const want = typeof expected === "string" ? parseAnswer(expected) : expected;
  return got !== null && want !== null && got.equals(want);
}
