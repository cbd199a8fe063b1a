// Numbers as the report's text shows them.

/** Seconds for people: "12.3 s" from one second up, "49 ms" or "1.2 ms" below (two significant digits). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return String(seconds);
  const ms = Number((seconds * 1000).toPrecision(2));
  return Math.abs(ms) >= 1000 ? `${seconds.toFixed(1)} s` : `${ms} ms`;
}
