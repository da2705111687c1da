import { describe, expect, it } from "vitest";
import { DICTIONARIES, detectLocale, translate } from ".";
import { en } from "./messages";
import { pluralBlocks } from "./plural";

/** The forms each locale's plural blocks must carry (what Intl.PluralRules may answer). */
const NEEDED: Record<string, string[]> = { en: ["one", "other"], ru: ["one", "few", "many", "other"], zh: ["other"] };

describe("detectLocale", () => {
  it.each([
    [["ru-RU", "en"], "ru"],
    [["zh-TW"], "zh"],
    [["zh_CN"], "zh"],
    [["de-DE", "ru"], "ru"],
    [["fr-FR"], "en"],
    [[], "en"],
  ] as const)("%j → %s", (langs, want) => {
    expect(detectLocale(langs)).toBe(want);
  });
});

describe("dictionaries", () => {
  // A variable appears as {name} or as the number of a plural block {name, plural, …}.
  const placeholders = (s: string) =>
    [...new Set([...s.matchAll(/\{(\w+)(?:\}|,\s*plural,)/g)].map((m) => m[1]))].sort();
  for (const [locale, dict] of Object.entries(DICTIONARIES)) {
    it(`${locale} has every key, non-empty, with the same placeholders`, () => {
      expect(Object.keys(dict).sort()).toEqual(Object.keys(en).sort());
      for (const [key, value] of Object.entries(dict)) {
        expect(value.trim(), key).not.toBe("");
        expect(placeholders(value), key).toEqual(placeholders(en[key as keyof typeof en]));
        for (const block of pluralBlocks(value)) {
          for (const form of NEEDED[locale] ?? ["other"]) expect(block.forms.has(form), `${key}: ${form}`).toBe(true);
          for (const text of block.forms.values()) expect(text, key).toContain("#");
        }
      }
    });
  }
});

describe("translate", () => {
  it("fills placeholders and leaves unknown ones", () => {
    expect(translate("en", "branch", { n: 2, total: 3 })).toBe("2 / 3");
    expect(translate("ru", "confirmDelete", { title: "Тест" })).toBe("Удалить «Тест»?");
    expect(translate("en", "branch", { n: 1 })).toBe("1 / {total}");
  });
});
