/** Link targets allowed in model output: web, mail and in-page/relative links; nothing else. */
const SAFE = /^(https?|mailto):$/i;

export function safeUrl(url: string): string | null {
  // Control characters and whitespace inside a scheme ("java\tscript:") are how filters are fooled.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  const cleaned = url.replace(/[\u0000-\u0020\u007f-\u009f]+/g, "");
  const colon = cleaned.indexOf(":");
  const cut = cleaned.search(/[/?#]/);
  if (colon === -1 || (cut !== -1 && colon > cut)) {
    // Relative: fine unless it starts with "//" (another host, a protocol-relative link is fine
    // too, but keep what the user sees explicit).
    return url.trim();
  }
  return SAFE.test(cleaned.slice(0, colon + 1)) ? url.trim() : null;
}
