import { describe, expect, it } from "vitest";
import { translate } from ".";
import { formatPlurals, pluralBlocks } from "./plural";

const RU = "{n, plural, one {# сообщение} few {# сообщения} many {# сообщений} other {# сообщения}}";
const EN = "{n, plural, =0 {no messages} one {# message} other {# messages}}";

describe("formatPlurals", () => {
  it.each([
    [1, "1 сообщение"],
    [2, "2 сообщения"],
    [4, "4 сообщения"],
    [5, "5 сообщений"],
    [11, "11 сообщений"],
    [12, "12 сообщений"],
    [21, "21 сообщение"],
    [22, "22 сообщения"],
    [25, "25 сообщений"],
    [101, "101 сообщение"],
    [1.5, "1.5 сообщения"],
  ])("ru %d → %s", (n, want) => {
    expect(formatPlurals(RU, "ru", { n })).toBe(want);
  });

  it.each([
    [0, "no messages"],
    [1, "1 message"],
    [2, "2 messages"],
    [21, "21 messages"],
  ])("en %d → %s", (n, want) => {
    expect(formatPlurals(EN, "en", { n })).toBe(want);
  });

  it("keeps text around blocks, several blocks, and a missing number untouched", () => {
    const t = "A {a, plural, one {# x} other {# xs}} and {b, plural, one {# y} other {# ys}}.";
    expect(formatPlurals(t, "en", { a: 1, b: 3 })).toBe("A 1 x and 3 ys.");
    expect(formatPlurals(t, "en", { a: 2 })).toBe("A 2 xs and {b, plural, one {# y} other {# ys}}.");
    expect(formatPlurals("no blocks {n}", "en", { n: 1 })).toBe("no blocks {n}");
  });

  it("reads a formatted number (thousands separators) for the choice", () => {
    expect(formatPlurals(RU, "ru", { n: "1 001" })).toBe("1 001 сообщение");
  });

  it("refuses a malformed block", () => {
    expect(() => pluralBlocks("{n, plural, one # x}")).toThrow(/bad plural/);
    expect(() => pluralBlocks("{n, plural, one {# x")).toThrow(/unclosed/);
  });
});

describe("translate with plurals", () => {
  it("Russian counts read correctly", () => {
    expect(translate("ru", "markerDropped", { dropped: 1 })).toMatch(/^1 раннее сообщение выше не отправлено /);
    expect(translate("ru", "markerDropped", { dropped: 3 })).toMatch(/^3 ранних сообщения выше не отправлены /);
    expect(translate("ru", "markerDropped", { dropped: 5 })).toMatch(/^5 ранних сообщений выше не отправлены /);
    expect(translate("ru", "reasoningTokens", { n: 21 })).toBe("21 токен рассуждения");
    expect(translate("ru", "reasoningTokens", { n: 7 })).toBe("7 токенов рассуждения");
  });

  it("English singular and plural", () => {
    expect(translate("en", "markerDropped", { dropped: 1 })).toMatch(/^1 earlier message above was left out/);
    expect(translate("en", "markerDropped", { dropped: 2 })).toMatch(/^2 earlier messages above were left out/);
    expect(translate("en", "contextTrimmed", { dropped: 1, summarised: 4 })).toBe(
      "1 earlier message left out, 4 summarised, to fit the context window",
    );
  });
});
