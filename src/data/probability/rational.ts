// Exact fractions over BigInt, so answers never carry floating-point error.

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

function toBigInt(value: bigint | number, what: string): bigint {
  if (typeof value === "bigint") return value;
  if (!Number.isSafeInteger(value)) throw new RangeError(`Rational: ${what} must be a safe integer, got ${value}`);
  return BigInt(value);
}

/** An exact rational number num/den, always reduced, with den > 0. */
export class Rational {
  readonly num: bigint;
  readonly den: bigint;

  constructor(num: bigint | number, den: bigint | number = 1n) {
    let n = toBigInt(num, "numerator");
    let d = toBigInt(den, "denominator");
    if (d === 0n) throw new RangeError("Rational: division by zero");
    if (d < 0n) [n, d] = [-n, -d];
    const g = gcd(n, d);
    this.num = g > 1n ? n / g : n;
    this.den = g > 1n ? d / g : d;
  }

  static readonly ZERO = new Rational(0n);
  static readonly ONE = new Rational(1n);

  /** Parses "a", "-a" or "a/b" (integers only); null for anything else or a zero denominator. */
  static parse(text: string): Rational | null {
    const m = /^\s*([+-]?\d+)\s*(?:\/\s*([+-]?\d+)\s*)?$/.exec(text);
    if (!m) return null;
    const den = m[2] === undefined ? 1n : BigInt(m[2]);
    return den === 0n ? null : new Rational(BigInt(m[1]!), den);
  }

  add(o: Rational): Rational {
    return new Rational(this.num * o.den + o.num * this.den, this.den * o.den);
  }
  sub(o: Rational): Rational {
    return new Rational(this.num * o.den - o.num * this.den, this.den * o.den);
  }
  mul(o: Rational): Rational {
    return new Rational(this.num * o.num, this.den * o.den);
  }
  div(o: Rational): Rational {
    if (o.num === 0n) throw new RangeError("Rational: division by zero");
    return new Rational(this.num * o.den, this.den * o.num);
  }
  neg(): Rational {
    return new Rational(-this.num, this.den);
  }
  /** this^k for an integer k ≥ 0. */
  pow(k: number): Rational {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`Rational.pow: exponent must be an integer ≥ 0, got ${k}`);
    const e = BigInt(k);
    return new Rational(this.num ** e, this.den ** e);
  }
  /** 1 − this: the complement of a probability. */
  complement(): Rational {
    return Rational.ONE.sub(this);
  }

  /** −1, 0 or 1 as this is less than, equal to or greater than o. */
  compare(o: Rational): -1 | 0 | 1 {
    const d = this.num * o.den - o.num * this.den;
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }
  equals(o: Rational): boolean {
    return this.num === o.num && this.den === o.den;
  }
  isZero(): boolean {
    return this.num === 0n;
  }
  isInteger(): boolean {
    return this.den === 1n;
  }
  toNumber(): number {
    return Number(this.num) / Number(this.den);
  }
  /** "a/b", or "a" for integers. */
  toString(): string {
    return this.den === 1n ? `${this.num}` : `${this.num}/${this.den}`;
  }
}

/** Shorthand: r(3, 8) is 3/8. */
export function r(num: bigint | number, den: bigint | number = 1n): Rational {
  return new Rational(num, den);
}

export function sum(values: readonly Rational[]): Rational {
  return values.reduce((acc, v) => acc.add(v), Rational.ZERO);
}
