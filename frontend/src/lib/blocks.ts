/**
 * Split Markdown into top-level blocks that can be parsed on their own, so a long answer is
 * parsed once per block (cached) and a streaming answer re-parses only its last block per frame.
 *
 * A block ends at a blank line — but not inside a fenced code block or a `$$` / `\[` display
 * math block, and not before an indented line (a list item's continuation or nested list).
 */

const FENCE = /^\s*(`{3,}|~{3,})/;

export function splitBlocks(text: string): string[] {
  const lines = text.split("\n");
  const blocks: string[] = [];
  let current: string[] = [];
  let fence: string | null = null;
  let math: "$$" | "\\[" | null = null;
  let blank = false;

  const close = (): void => {
    if (current.length) blocks.push(current.join("\n"));
    current = [];
  };

  for (const line of lines) {
    if (fence !== null) {
      current.push(line);
      const m = FENCE.exec(line);
      if (m?.[1] && m[1][0] === fence[0] && m[1].length >= fence.length && line.trim() === m[1]) {
        fence = null;
      }
      continue;
    }
    if (math !== null) {
      current.push(line);
      if (math === "$$" ? line.trim().endsWith("$$") : line.includes("\\]")) math = null;
      continue;
    }
    if (line.trim() === "") {
      blank = true;
      continue;
    }
    if (blank) {
      // A new block, unless this line continues the previous one (indented).
      if (!/^[ \t]/.test(line)) close();
      else current.push("");
      blank = false;
    }
    current.push(line);
    const f = FENCE.exec(line);
    if (f?.[1]) {
      fence = f[1];
      continue;
    }
    const t = line.trim();
    if (t === "$$" || (t.startsWith("$$") && !t.slice(2).includes("$$"))) math = "$$";
    else if (t.startsWith("\\[") && !t.includes("\\]")) math = "\\[";
  }
  close();
  return blocks;
}
