import { describe, expect, it } from "vitest";
import { splitBlocks } from "./blocks";

describe("splitBlocks", () => {
  it("splits paragraphs at blank lines", () => {
    expect(splitBlocks("one\ntwo\n\nthree\n\n\nfour")).toEqual(["one\ntwo", "three", "four"]);
  });

  it("keeps a fenced code block whole, blank lines included", () => {
    const code = "```py\na = 1\n\n\nb = 2\n```";
    expect(splitBlocks(`intro\n\n${code}\n\nafter`)).toEqual(["intro", code, "after"]);
  });

  it("keeps an unclosed fence (streaming) as the last block", () => {
    expect(splitBlocks("x\n\n```\ncode\n\nmore")).toEqual(["x", "```\ncode\n\nmore"]);
  });

  it("keeps display math whole", () => {
    expect(splitBlocks("$$\na\n\nb\n$$\n\nnext")).toEqual(["$$\na\n\nb\n$$", "next"]);
    expect(splitBlocks("\\[\na\n\nb\n\\]\n\nnext")).toEqual(["\\[\na\n\nb\n\\]", "next"]);
    expect(splitBlocks("$$x$$\n\nnext")).toEqual(["$$x$$", "next"]);
  });

  it("keeps indented continuations with their list item", () => {
    const list = "1. first\n\n   more of first\n\n    - nested";
    expect(splitBlocks(`${list}\n\nend`)).toEqual([list, "end"]);
  });

  it("joins back to the same text, blank runs aside", () => {
    const text = "# T\n\npara\n\n```js\nx\n\ny\n```\n\n| a |\n|---|\n| 1 |";
    expect(splitBlocks(text).join("\n\n")).toBe(text);
  });
});
