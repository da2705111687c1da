import { describe, expect, it } from "vitest";
import { safeUrl } from "./safeUrl";

describe("safeUrl", () => {
  it.each(["https://example.com/a?b#c", "http://x.org", "mailto:a@b.c", "/docs", "#sec", "page.html", "a/b:c"])(
    "keeps %s",
    (url) => {
      expect(safeUrl(url)).toBe(url);
    },
  );
  it.each([
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\u0001javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
  ])("drops %j", (url) => {
    expect(safeUrl(url)).toBeNull();
  });
});
