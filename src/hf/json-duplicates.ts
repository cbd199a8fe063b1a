// JSON.parse keeps the last of two equal keys without a word. For a safetensors header that
// means two tensors (or two dtypes for one tensor) where the file's author meant one: find them.

export interface DuplicateKey {
  key: string;
  /** Keys of the enclosing objects, outermost first ([] for the top level). */
  path: string[];
}

interface Frame {
  isObject: boolean;
  keys: Set<string>;
  expectingKey: boolean;
  name: string;
}

/** The first key that appears twice in one object of `text`, which must already be valid JSON. */
export function findDuplicateKey(text: string): DuplicateKey | undefined {
  const stack: Frame[] = [];
  let lastKey = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1; // bounded even if text were not JSON
      const top = stack[stack.length - 1];
      if (top?.isObject && top.expectingKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, path: stack.slice(1).map((f) => f.name) };
        top.keys.add(key);
        top.expectingKey = false;
        lastKey = key;
      }
      i = j;
    } else if (c === "{" || c === "[") {
      const parent = stack[stack.length - 1];
      const name = parent?.isObject ? lastKey : "[]";
      stack.push({ isObject: c === "{", keys: new Set(), expectingKey: c === "{", name });
    } else if (c === "}" || c === "]") {
      stack.pop();
    } else if (c === ",") {
      const top = stack[stack.length - 1];
      if (top?.isObject) top.expectingKey = true;
    }
  }
  return undefined;
}
