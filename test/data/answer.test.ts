import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { answersMatch, checkAnswer, extractAnswer, extractBoxed, parseAnswer } from "../../src/data/answer.js";
import { r } from "../../src/data/probability/rational.js";

describe("extractBoxed", () => {
  const cases: [string, string | null][] = [
    ["so \\boxed{3/8}.", "3/8"],
    ["first \\boxed{1/2}, then \\boxed{3/8}", "3/8"],
    ["\\boxed{\\frac{3}{8}}", "\\frac{3}{8}"],
    ["\\boxed{\\frac{\\frac{1}{2}}{3}} end", "\\frac{\\frac{1}{2}}{3}"],
    ["\\boxed { 5 }", "5"],
    ["\\fbox{7}", "7"],
    ["$\\boxed{\\dfrac{5}{16}}$", "\\dfrac{5}{16}"],
    ["\\boxed{a \\} b}", "a \\} b"], // an escaped brace does not close the box
    ["no box here: 3/8", null],
    ["\\boxed{\\frac{3}{8}", null], // cut off before the box closed
    ["\\boxed{1/2} and later a truncated \\boxed{3", null], // the last box is the answer, and it is unfinished
    ["\\boxed", null],
    ["", null],
  ];
  for (const [text, want] of cases) it(JSON.stringify(text), () => assert.equal(extractBoxed(text), want));
});

describe("parseAnswer", () => {
  const valid: [string, string][] = [
    ["3/8", "3/8"],
    ["6/16", "3/8"],
    [" 3 / 8 ", "3/8"],
    ["\\frac{3}{8}", "3/8"],
    ["\\dfrac{3}{8}", "3/8"],
    ["\\tfrac{3}{8}", "3/8"],
    ["\\frac38", "3/8"],
    ["\\frac{1}{2}", "1/2"],
    ["\\frac{-3}{8}", "-3/8"],
    ["-\\frac{3}{8}", "-3/8"],
    ["\\frac{3}{-8}", "-3/8"],
    ["−3/8", "-3/8"], // Unicode minus
    ["0.375", "3/8"],
    [".375", "3/8"],
    ["-0.5", "-1/2"],
    ["2.50", "5/2"],
    ["1.", "1"],
    ["7", "7"],
    ["-4", "-4"],
    ["+4", "4"],
    ["0", "0"],
    ["$\\frac{1}{6}$", "1/6"],
    ["$$5/16$$", "5/16"],
    ["\\(\\frac{2}{3}\\)", "2/3"],
    ["\\left(\\frac{1}{2}\\right)", "1/2"],
    ["{3}/{8}", "3/8"],
    ["\\frac{\\frac{1}{2}}{4}", "1/8"],
    ["\\frac{0.5}{2}", "1/4"],
    ["37.5\\%", "3/8"],
    ["50%", "1/2"],
    ["\\$1.50", "3/2"],
    ["\\text{3/8}", "3/8"],
    ["\\frac{3}{8}.", "3/8"],
    ["1\\,000", "1000"],
    ["123456789012345678901234567890/2", "61728394506172839450617283945"],
  ];
  for (const [text, want] of valid) it(`${JSON.stringify(text)} → ${want}`, () => assert.equal(parseAnswer(text)?.toString(), want));

  const invalid = [
    "",
    "   ",
    "abc",
    "3/0",
    "\\frac{1}{0}",
    "x = 3/8",
    "1/2 + 1/4",
    "3/8 dollars",
    "\\frac{3}",
    "\\frac",
    "(3/8",
    "3/8)",
    "1,5",
    "1\\frac{1}{2}",
    "--",
    ".",
    "1e3",
    "\\sqrt{2}",
    "NaN",
    "Infinity",
    "3..8",
    "{}",
  ];
  for (const text of invalid) it(`${JSON.stringify(text)} → null`, () => assert.equal(parseAnswer(text), null));
});

describe("comparing answers", () => {
  it("extractAnswer reads the last box as a rational", () => {
    assert.equal(extractAnswer("P = 6/36. Therefore \\boxed{\\frac{1}{6}}.")?.toString(), "1/6");
    assert.equal(extractAnswer("Therefore \\boxed{x}."), null);
    assert.equal(extractAnswer("1/6"), null, "an answer outside a box is not an answer");
  });

  it("answersMatch compares exactly, as rationals", () => {
    assert.ok(answersMatch("3/8", "\\frac{6}{16}"));
    assert.ok(answersMatch("0.375", "$\\dfrac{3}{8}$"));
    assert.ok(answersMatch("-1/2", "-0.5"));
    assert.ok(!answersMatch("1/3", "0.333"));
    assert.ok(!answersMatch("1/3", "0.3333333333333333"));
    assert.ok(!answersMatch("3/8", "-3/8"));
    assert.ok(!answersMatch("abc", "abc"), "unparsable answers never match, even each other");
    assert.ok(!answersMatch("", ""));
  });

  it("checkAnswer takes the model's boxed answer and the expected one as text or rational", () => {
    const output = "Step 1 ... Step 2 ... so the probability is $\\boxed{\\dfrac{5}{16}}$.";
    assert.ok(checkAnswer(output, "5/16"));
    assert.ok(checkAnswer(output, "\\frac{10}{32}"));
    assert.ok(checkAnswer(output, r(5, 16)));
    assert.ok(!checkAnswer(output, "5/17"));
    assert.ok(!checkAnswer("the answer is 5/16", "5/16"), "no box, no credit");
    assert.ok(!checkAnswer(output, "not a number"));
    assert.ok(!checkAnswer("\\boxed{5/16} but I changed my mind: \\boxed{1/2}", "5/16"), "only the last box counts");
  });
});
