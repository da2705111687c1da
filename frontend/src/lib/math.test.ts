import { describe, expect, it } from "vitest";
import { looksLikeMath, prepareMath } from "./math";

describe("prepareMath: money is text", () => {
  it.each([
    "It costs $5 and $10.",
    "Prices: $5, $10 and $20",
    "between $5-$10 a month",
    "$3.50/$4.00 per unit",
    "I paid $5 for apples and $3 for pears",
    "Budget: $1,000 to $2,000",
    "Just $5.",
    "$20/month vs $30/month",
    "Use \\$x\\$ for literal dollars",
  ])("%s", (text) => {
    expect(prepareMath(text)).not.toMatch(/\$\$/);
  });
});

describe("prepareMath: math is math", () => {
  it.each([
    ["Let $x$ be real", "Let $$x$$ be real"],
    ["so $x^2 + y^2 = r^2$.", "so $$x^2 + y^2 = r^2$$."],
    ["angle $\\alpha$ here", "angle $$\\alpha$$ here"],
    ["where $f(x)$ is", "where $$f(x)$$ is"],
    ["$a+b$ and $2x$", "$$a+b$$ and $$2x$$"],
    ["inline \\(E = mc^2\\) done", "inline $$E = mc^2$$ done"],
  ])("%s", (text, want) => {
    expect(prepareMath(text)).toBe(want);
  });

  it("turns \\[…\\] on its own lines into display math", () => {
    expect(prepareMath("Formula:\n\\[\n\\int_0^1 x\\,dx\n\\]\nend")).toBe(
      "Formula:\n$$\n\\int_0^1 x\\,dx\n$$\n\nend",
    );
  });

  it("turns a one-line $$…$$ into a display block", () => {
    expect(prepareMath("$$E=mc^2$$")).toBe("$$\nE=mc^2\n$$");
  });

  it("keeps display blocks as they are", () => {
    const text = "$$\na $b$ c\n$$";
    expect(prepareMath(text)).toBe(text);
  });
});

describe("prepareMath leaves code alone", () => {
  it("fenced blocks", () => {
    const text = "```sh\necho $HOME $x$\n```\nand $x$";
    expect(prepareMath(text)).toBe("```sh\necho $HOME $x$\n```\nand $$x$$");
  });
  it("unclosed fence while streaming", () => {
    const text = "```py\nprint('$x$')";
    expect(prepareMath(text)).toBe(text);
  });
  it("inline code spans", () => {
    expect(prepareMath("run `echo $x$` then $y$")).toBe("run `echo $x$` then $$y$$");
  });
});

describe("looksLikeMath", () => {
  it("rejects spaces at the edges and a digit after the closing dollar", () => {
    expect(looksLikeMath(" x", "")).toBe(false);
    expect(looksLikeMath("x ", "")).toBe(false);
    expect(looksLikeMath("5-", "1")).toBe(false);
  });
  it("rejects prose and bare numbers", () => {
    expect(looksLikeMath("5 for apples and", "")).toBe(false);
    expect(looksLikeMath("5", "")).toBe(false);
  });
  it("accepts commands, operators and single letters", () => {
    expect(looksLikeMath("\\frac{1}{2}", "")).toBe(true);
    expect(looksLikeMath("n", "")).toBe(true);
    expect(looksLikeMath("x_1", ".")).toBe(true);
  });
});
