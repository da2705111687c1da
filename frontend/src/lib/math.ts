/**
 * Math delimiters for model output, normalised before Markdown parsing.
 *
 * remark-math runs with single-dollar math OFF, so a lone `$` is always text. This pass rewrites
 * the delimiters models use into remark-math's `$$`:
 *   - `$$…$$`, `\(…\)` and `\[…\]` are always math;
 *   - `$…$` only when it looks like math (`$x^2$`, `$\alpha$`, `$n$`), never for money such as
 *     `$5 and $10` or `$3.50/$4.00` (Pandoc's rules plus a content check).
 * Code (fenced blocks, inline code spans) is left untouched.
 */

const FENCE = /^\s*(`{3,}|~{3,})/;

/** Does the text between two single dollars look like math rather than prose or money? */
export function looksLikeMath(inner: string, after: string): boolean {
  if (!inner || /^\s|\s$/.test(inner) || inner.includes("\n")) return false;
  // `$5-$10`, `$3.50/$4.00`: a dollar directly before a digit opens an amount, not closes math.
  if (/^\d/.test(after)) return false;
  if (/\\[a-zA-Z]+/.test(inner)) return true; // \alpha, \frac{..}{..}
  const words = inner.match(/[\p{L}]{2,}/gu) ?? [];
  // Prose between two amounts ("$5 for apples and $"): three or more words.
  if (words.length >= 3 && /[\p{L}]{2,}\s+[\p{L}]{2,}/u.test(inner)) return false;
  if (/^\p{L}$/u.test(inner)) return true; // $x$
  if (/^\p{L}[\p{L}\d]?\d?'*$/u.test(inner) && inner.length <= 3) return true; // $x1$, $ab$
  if (/^[\d.,\s]+$/.test(inner)) return false; // a bare number: likely money
  if (/[=^_<>{}|]/.test(inner)) return true;
  if (/[+\-*/]/.test(inner) && /[\p{L}\d)]\s*[+\-*/]\s*[\p{L}\d(]/u.test(inner)) return true;
  if (/\d\p{L}/u.test(inner) && words.length <= 1) return true; // $2x$
  if (/\p{L}\s*\(/u.test(inner) && words.length <= 1) return true; // $f(x)$
  if (/[\u0370-\u03ff\u2200-\u22ff]/.test(inner)) return true; // Greek letters, math operators
  return false;
}

function findCodeSpanEnd(line: string, start: number, ticks: number): number {
  let i = start;
  while (i < line.length) {
    const j = line.indexOf("`", i);
    if (j < 0) return -1;
    let k = j;
    while (k < line.length && line[k] === "`") k++;
    if (k - j === ticks) return k;
    i = k;
  }
  return -1;
}

/** Rewrite the inline delimiters of one line (outside code). */
export function rewriteInline(line: string): string {
  let out = "";
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === "\\") {
      const n = line[i + 1];
      if (n === "(") {
        const close = line.indexOf("\\)", i + 2);
        if (close > i + 2) {
          out += "$$" + line.slice(i + 2, close) + "$$";
          i = close + 2;
          continue;
        }
      }
      out += line.slice(i, i + 2);
      i += 2;
      continue;
    }
    if (c === "`") {
      let k = i;
      while (k < line.length && line[k] === "`") k++;
      const end = findCodeSpanEnd(line, k, k - i);
      if (end < 0) {
        out += line.slice(i, k);
        i = k;
      } else {
        out += line.slice(i, end);
        i = end;
      }
      continue;
    }
    if (c === "$") {
      if (line[i + 1] === "$") {
        const close = line.indexOf("$$", i + 2);
        const end = close < 0 ? i + 2 : close + 2;
        out += line.slice(i, end);
        i = end;
        continue;
      }
      let close = -1;
      for (let j = i + 1; j < line.length; j++) {
        if (line[j] === "\\") {
          j++;
          continue;
        }
        if (line[j] === "$") {
          close = j;
          break;
        }
      }
      if (close > 0 && line[close + 1] !== "$") {
        const inner = line.slice(i + 1, close);
        if (looksLikeMath(inner, line[close + 1] ?? "")) {
          out += "$$" + inner + "$$";
          i = close + 1;
          continue;
        }
      }
      out += "$";
      i++;
      continue;
    }
    out += line.charAt(i);
    i++;
  }
  return out;
}

/** `\[…\]` (possibly over several lines) → display math; a line that is only `$$…$$` too. */
function rewriteDisplay(text: string): string {
  text = text.replace(/(^|\n)([ \t]*)\\\[([\s\S]+?)\\\]/g, (_m, nl: string, indent: string, body: string) =>
    `${nl}${indent}$$\n${indent}${body.trim()}\n${indent}$$\n`,
  );
  text = text.replace(/\\\[([\s\S]+?)\\\]/g, (_m, body: string) => `$$${body}$$`);
  return text.replace(/^([ \t]*)\$\$([^\n]*?[^\s$][^\n]*?)\$\$[ \t]*$/gm, (_m, indent: string, body: string) =>
    `${indent}$$\n${indent}${body.trim()}\n${indent}$$`,
  );
}

/** Normalise math delimiters in Markdown text; code blocks and spans are kept as they are. */
export function prepareMath(markdown: string): string {
  if (!markdown.includes("$") && !markdown.includes("\\")) return markdown;
  const lines = markdown.split("\n");
  const out: string[] = [];
  let prose: string[] = [];
  const flush = (): void => {
    if (prose.length) {
      let inMath = false;
      for (const l of rewriteDisplay(prose.join("\n")).split("\n")) {
        if (/^\s*\$\$\s*$/.test(l)) inMath = !inMath;
        out.push(inMath || /^\s*\$\$\s*$/.test(l) ? l : rewriteInline(l));
      }
      prose = [];
    }
  };
  let fence: string | null = null;
  for (const line of lines) {
    if (fence !== null) {
      out.push(line);
      const m = FENCE.exec(line);
      if (m?.[1] && m[1][0] === fence[0] && m[1].length >= fence.length && line.trim() === m[1]) {
        fence = null;
      }
      continue;
    }
    const m = FENCE.exec(line);
    if (m?.[1]) {
      flush();
      fence = m[1];
      out.push(line);
      continue;
    }
    prose.push(line);
  }
  flush();
  return out.join("\n");
}
