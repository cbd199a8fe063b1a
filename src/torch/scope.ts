// Tensor lifetimes. GPU memory is invisible to the JS garbage collector, so tensors are freed
// explicitly: `dispose()`, or `tidy(fn)`, which frees every tensor made inside fn except those it
// returns (as in TensorFlow.js). Tensors nobody disposes are still freed when garbage-collected.

export interface Disposable {
  dispose(): void;
}

const scopes: Set<Disposable>[] = [];

/** Called by every new tensor: the innermost open tidy scope owns it. */
export function track(t: Disposable): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Takes t out of every open scope, so no tidy frees it. */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/** Collects the disposables reachable from a value: itself, array items, object fields. */
export function collect(value: unknown, isDisposable: (v: unknown) => v is Disposable, into = new Set<Disposable>()): Set<Disposable> {
  if (isDisposable(value)) into.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, isDisposable, into);
  else if (value instanceof Map) for (const v of value.values()) collect(v, isDisposable, into);
  else if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collect(v, isDisposable, into);
  return into;
}

export function runScoped<R>(fn: () => R, isDisposable: (v: unknown) => v is Disposable): R {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: R;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error("tidy() takes a synchronous function: async work would outlive the scope");
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  const kept = collect(result, isDisposable);
  for (const t of scope) if (!kept.has(t)) t.dispose();
  // Returned tensors now belong to the enclosing scope, if any.
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of kept) if (scope.has(t)) parent.add(t);
  return result;
}
