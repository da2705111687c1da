import { renderToStaticMarkup } from "react-dom/server";
import { beforeAll, describe, expect, it } from "vitest";
import { loadRich, Markdown } from "./Markdown";

beforeAll(async () => {
  await loadRich(); // KaTeX and highlighting load lazily in the page
});

const html = (text: string) => renderToStaticMarkup(<Markdown text={text} />);

describe("Markdown safety", () => {
  it.each([
    "<img src=x onerror=alert(1)>",
    '<svg onload="alert(1)"></svg>',
    "<script>alert(1)</script>",
    '<a href="javascript:alert(1)">x</a>',
    '<iframe src="javascript:alert(1)"></iframe>',
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
  ])("shows raw HTML as text: %s", (payload) => {
    const out = html(`before ${payload} after`);
    expect(out).not.toMatch(/<(img|svg|script|iframe|div style)/i);
    expect(out).not.toMatch(/<[^>]*\son\w+=/i); // an event handler inside a real tag
    expect(out).toContain("&lt;");
  });

  it.each([
    "[link](javascript:alert(1))",
    "[link](JAVASCRIPT:alert(1))",
    "[link](  javascript:alert(1))",
    "<javascript:alert(1)>",
    "[a][r]\n\n[r]: javascript:alert(1)",
    "[x](data:text/html,<script>alert(1)</script>)",
    "![img](javascript:alert(1))",
    "$\\href{javascript:alert(1)}{x}$",
    "$$\\url{javascript:alert(1)}$$",
  ])("never makes a script link: %s", (payload) => {
    const out = html(payload);
    expect(out.toLowerCase()).not.toContain('href="javascript');
    expect(out.toLowerCase()).not.toContain('href="data:');
    expect(out).not.toMatch(/<img/);
  });

  it("keeps web links, opened safely", () => {
    const out = html("[site](https://example.com)");
    expect(out).toContain('href="https://example.com"');
    expect(out).toContain('rel="noopener noreferrer nofollow"');
  });

  it("shows images as links, never loads them", () => {
    const out = html("![cat](https://example.com/cat.png)");
    expect(out).not.toContain("<img");
    expect(out).toContain('href="https://example.com/cat.png"');
  });
});

describe("Markdown rendering", () => {
  it("leaves money alone", () => {
    const out = html("It costs $5 and $10.");
    expect(out).not.toContain("katex");
    expect(out).toContain("$5 and $10");
  });

  it("renders math in every delimiter", () => {
    for (const text of ["Let $x^2$ be", "inline \\(a+b\\)", "$$\\frac{1}{2}$$", "\\[\n\\sum_i i\n\\]"]) {
      expect(html(text), text).toContain('class="katex');
    }
    expect(html("$$\\frac{1}{2}$$")).toContain("katex-display");
  });

  it("renders GFM tables, task lists and strikethrough", () => {
    const out = html("| a | b |\n|---|--:|\n| 1 | 2 |\n\n- [x] done\n\n~~old~~");
    expect(out).toContain("<table>");
    expect(out).toContain('type="checkbox"');
    expect(out).toContain("<del>old</del>");
  });

  it("highlights code with a language and adds a copy button", () => {
    const out = html("```python\ndef f(x):\n    return x\n```");
    expect(out).toContain("hljs");
    expect(out).toContain("language-python");
    expect(out).toContain("code-copy");
    expect(out).toContain(">python<");
  });

  it("renders broken math as an error, not a crash", () => {
    expect(() => html("$$\\frac{$$")).not.toThrow();
  });
});
