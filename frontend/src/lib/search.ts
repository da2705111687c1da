/** Plain-text search helpers for the local mode (the server does real full-text search). */

/** Lower-cased, accents kept: good enough for ru/en/zh substring search. */
export function fold(s: string): string {
  return s.toLocaleLowerCase();
}

/** A one-line excerpt of `text` around the first match of `query`, or null when none. */
export function snippet(text: string, query: string, radius = 48): string | null {
  const q = fold(query.trim());
  if (!q) return null;
  const at = fold(text).indexOf(q);
  if (at < 0) return null;
  const start = Math.max(0, at - radius);
  const end = Math.min(text.length, at + q.length + radius);
  const body = text.slice(start, end).replace(/\s+/g, " ").trim();
  return (start > 0 ? "…" : "") + body + (end < text.length ? "…" : "");
}
