/** i18n: English, Russian and Chinese; chosen from the browser's languages, switchable, remembered. */

import { useSyncExternalStore } from "react";
import { en, ru, zh, type Dictionary, type MessageKey } from "./messages";
import { formatPlurals, type Vars } from "./plural";

export type Locale = "en" | "ru" | "zh";

export const LOCALES: Record<Locale, string> = { en: "English", ru: "Русский", zh: "中文" };
export const DICTIONARIES: Record<Locale, Dictionary> = { en, ru, zh };
export const LOCALE_KEY = "chatgate.locale";

export function isLocale(v: unknown): v is Locale {
  return v === "en" || v === "ru" || v === "zh";
}

/** The first supported language among the browser's preferences (ru-RU → ru, zh-TW → zh). */
export function detectLocale(languages: readonly string[]): Locale {
  for (const tag of languages) {
    const base = tag.toLowerCase().split(/[-_]/)[0];
    if (isLocale(base)) return base;
  }
  return "en";
}

export type { Vars } from "./plural";

/** The locale's text for `key`: plural blocks resolved for their numbers, then `{name}`s filled. */
export function translate(locale: Locale, key: MessageKey, vars?: Vars): string {
  const template = DICTIONARIES[locale][key];
  if (!vars) return template;
  return formatPlurals(template, locale, vars).replace(/\{(\w+)\}/g, (m, name: string) =>
    name in vars ? String(vars[name]) : m,
  );
}

function initialLocale(): Locale {
  try {
    const saved = localStorage.getItem(LOCALE_KEY);
    if (isLocale(saved)) return saved;
  } catch {
    // storage blocked: fall back to the browser's languages
  }
  if (typeof navigator === "undefined") return "en";
  return detectLocale(navigator.languages.length ? navigator.languages : [navigator.language]);
}

let current: Locale | null = null;
const listeners = new Set<() => void>();

export function getLocale(): Locale {
  current ??= initialLocale();
  return current;
}

export function setLocale(locale: Locale): void {
  current = locale;
  try {
    localStorage.setItem(LOCALE_KEY, locale);
  } catch {
    // not remembered, still applied
  }
  document.documentElement.lang = locale === "zh" ? "zh-CN" : locale;
  for (const l of listeners) l();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

export type T = (key: MessageKey, vars?: Vars) => string;

const bound = new Map<Locale, T>();

function tFor(locale: Locale): T {
  let t = bound.get(locale);
  if (!t) {
    t = (key, vars) => translate(locale, key, vars);
    bound.set(locale, t);
  }
  return t;
}

/** The current locale's translate function (stable per locale, so memoised children keep). */
export function useT(): T {
  return tFor(useSyncExternalStore(subscribe, getLocale, getLocale));
}

export function useLocale(): Locale {
  return useSyncExternalStore(subscribe, getLocale, getLocale);
}
