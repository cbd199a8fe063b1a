// Holm–Bonferroni adjustment for testing several arms against the baseline on one endpoint.

/**
 * Holm's step-down adjusted p-values, in the input order. With the m non-null p-values sorted
 * ascending, p_(1) ≤ … ≤ p_(m), the adjusted value of p_(i) is max_{j ≤ i} min(1, (m − j + 1)·p_(j)):
 * monotone in the sorted order and capped at 1. Rejecting where the adjusted p ≤ α controls the
 * family-wise error rate at α. Nulls (no test) stay null and do not count in m.
 */
export function holm(ps: readonly (number | null)[]): (number | null)[] {
  ps.forEach((p, i) => {
    if (p !== null && !(p >= 0 && p <= 1)) throw new RangeError(`holm: p[${i}] = ${p} is not a probability in [0, 1]`);
  });
  const order = ps
    .map((p, i) => ({ p, i }))
    .filter((e): e is { p: number; i: number } => e.p !== null)
    .sort((x, y) => x.p - y.p);
  const m = order.length;
  const adjusted: (number | null)[] = ps.map(() => null);
  let running = 0;
  order.forEach(({ p, i }, rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    adjusted[i] = running;
  });
  return adjusted;
}
