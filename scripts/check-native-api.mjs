// Checks the native addon's TypeScript declaration against its C++: every function that
// native/*.cc registers with SVDLORA_EXPORT must be a member of NativeAddon in
// src/torch/native-api.ts and the other way round, and each member must have as many parameters
// as its C++ function reads arguments (the highest index in `info[i]`, `T(info, i)` and the other
// readers, plus one). Run by scripts/build-native.mjs before every build; by hand:
//   node scripts/check-native-api.mjs
// Prints one line per problem and exits 1, or prints how many exports match.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const DECLARATION = "src/torch/native-api.ts";
const INTERFACE = "NativeAddon";

// ---- C++ ----

/** The text without comments; string and character literals are kept. */
function stripComments(text) {
  let out = "";
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
      out += " ";
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The text from the bracket at `open` to its match, skipping string and character literals. */
function balanced(text, open) {
  const pair = { "(": ")", "{": "}" }[text[open]];
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === "\\" ? 2 : 1;
      i = j;
    } else if (c === text[open]) depth++;
    else if (c === pair && --depth === 0) return text.slice(open, i + 1);
  }
  return text.slice(open);
}

/** How many arguments C++ code reads: one more than the highest index it reads. */
function arityOf(code) {
  const indices = [
    ...code.matchAll(/\binfo\s*\[\s*(\d+)\s*\]/g),
    ...code.matchAll(/\b\w+\(\s*info\s*,\s*(\d+)/g),
    ...code.matchAll(/\bOptions\(\s*info\s*,\s*\d+\s*,\s*(\d+)/g), // Options(info, dtypeArg, deviceArg)
  ].map((m) => Number(m[1]));
  return indices.length === 0 ? 0 : Math.max(...indices) + 1;
}

const DEFINITION = /\bNapi::Value\s+(\w+)\s*\(\s*const\s+Napi::CallbackInfo\s*&\s*info\s*\)\s*\{/g;

/**
 * The exports that C++ sources register: name → { file, fn, arity }, and the problems found (a
 * name registered twice, a function whose definition is not found).
 * @param {{ file: string, text: string }[]} sources
 */
export function registrations(sources) {
  const bodies = new Map(); // function → bodies (#if branches may define it more than once)
  const aliases = new Map(); // #define DistInit NoC10d
  const found = [];
  const addBody = (fn, body) => bodies.set(fn, [...(bodies.get(fn) ?? []), body]);
  for (const { file, text } of sources) {
    const code = stripComments(text);
    for (const m of code.matchAll(DEFINITION)) addBody(m[1], balanced(code, m.index + m[0].length - 1));
    // Macros that define a function named by their first parameter, e.g. UNARY(Name, expr).
    for (const m of code.matchAll(/^[ \t]*#define[ \t]+(\w+)\((\w+)[^)]*\)((?:.*\\\n)*.*)$/gm)) {
      const [, macro, param, macroBody] = m;
      if (!new RegExp(`\\bNapi::Value\\s+${param}\\s*\\(`).test(macroBody)) continue;
      for (const use of code.matchAll(new RegExp(`^[ \\t]*${macro}\\(\\s*(\\w+)\\s*,`, "gm")))
        addBody(use[1], macroBody + balanced(code, use.index + use[0].indexOf("(")));
    }
    for (const m of code.matchAll(/^[ \t]*#define[ \t]+(\w+)[ \t]+(\w+)[ \t]*$/gm)) aliases.set(m[1], m[2]);
    for (const m of code.matchAll(/\bSVDLORA_EXPORT\(\s*\w+\s*,\s*"([^"]+)"\s*,\s*(\w+)\s*\)/g)) found.push({ name: m[1], fn: m[2], file });
  }
  const exports = new Map();
  const problems = [];
  for (const { name, fn, file } of found) {
    if (exports.has(name)) {
      problems.push(`"${name}" is registered twice (${exports.get(name).file} and ${file})`);
      continue;
    }
    const candidates = [fn, aliases.get(fn)].filter((f) => f !== undefined && bodies.has(f));
    if (candidates.length === 0) {
      problems.push(`"${name}" is registered in ${file} with ${fn}, whose definition was not found`);
      continue;
    }
    const arity = Math.max(...candidates.flatMap((f) => bodies.get(f).map(arityOf)));
    exports.set(name, { file, fn, arity });
  }
  return { exports, problems };
}

// ---- TypeScript ----

function hasTypeScript() {
  try {
    createRequire(import.meta.url).resolve("typescript");
    return true;
  } catch {
    return false;
  }
}

/**
 * The members of the NativeAddon interface: name → parameter count (the most among overloads),
 * and the problems found (a member that is not a method, a rest parameter, no interface).
 */
export function declarations(text, file = DECLARATION) {
  const ts = createRequire(import.meta.url)("typescript");
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const members = new Map();
  const problems = [];
  const iface = source.statements.find((s) => ts.isInterfaceDeclaration(s) && s.name.text === INTERFACE);
  if (!iface) return { members, problems: [`${file} has no interface ${INTERFACE}`] };
  for (const m of iface.members) {
    const name = m.name && (ts.isIdentifier(m.name) || ts.isStringLiteral(m.name)) ? m.name.text : m.getText(source);
    if (!ts.isMethodSignature(m)) {
      problems.push(`${INTERFACE}.${name} in ${file} must be a method signature, name(param: Type, …): Result`);
      continue;
    }
    if (m.parameters.some((p) => p.dotDotDotToken))
      problems.push(`${INTERFACE}.${name} in ${file} has a rest parameter: name each argument`);
    members.set(name, Math.max(members.get(name) ?? 0, m.parameters.length));
  }
  return { members, problems };
}

// ---- both ----

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * Every difference between the C++ registrations and the declaration, one line each (none: they match).
 * @param {{ file: string, text: string }[]} sources the C++ files
 * @param {{ file: string, text: string }} declaration the TypeScript file declaring NativeAddon
 */
export function checkNativeApi(sources, declaration) {
  const { exports, problems: cc } = registrations(sources);
  const { members, problems: dts } = declarations(declaration.text, declaration.file);
  const problems = [...cc, ...dts];
  for (const [name, { file, fn, arity }] of exports) {
    const params = members.get(name);
    if (params === undefined) problems.push(`"${name}" is registered in ${file} but not declared in ${INTERFACE} (${declaration.file})`);
    else if (params !== arity)
      problems.push(
        `"${name}" takes ${plural(params, "parameter")} in ${INTERFACE} (${declaration.file}) but ${fn} in ${file} reads ${plural(arity, "argument")}`,
      );
  }
  for (const name of members.keys())
    if (!exports.has(name)) problems.push(`"${name}" is declared in ${INTERFACE} (${declaration.file}) but no native/*.cc registers it`);
  return problems.map((p) => `native API: ${p}`);
}

/** The check on this repository's files; null where it cannot run: an installed package has no
 * src/, and an install without dev dependencies no TypeScript to parse the declaration with. */
export function checkRepository(dir = root) {
  if (!existsSync(join(dir, DECLARATION)) || !hasTypeScript()) return null;
  const read = (file) => ({ file, text: readFileSync(join(dir, file), "utf8") });
  const sources = readdirSync(join(dir, "native"))
    .filter((f) => f.endsWith(".cc"))
    .sort()
    .map((f) => read(`native/${f}`));
  return { problems: checkNativeApi(sources, read(DECLARATION)), exports: registrations(sources).exports.size };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = checkRepository();
  if (result === null) console.log(`native API: not checked (no ${DECLARATION}, or no typescript package)`);
  else if (result.problems.length) {
    for (const p of result.problems) console.error(p);
    process.exit(1);
  } else console.log(`native API: the ${result.exports} exports of native/*.cc match ${INTERFACE} (${DECLARATION})`);
}
