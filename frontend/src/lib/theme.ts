/** Light / dark / system theme: a data-theme attribute on <html>, remembered in localStorage. */

import { useSyncExternalStore } from "react";

export type ThemeChoice = "light" | "dark" | "system";
export const THEME_KEY = "chatgate.theme";

const listeners = new Set<() => void>();
let choice: ThemeChoice | null = null;

function read(): ThemeChoice {
  try {
    const v = localStorage.getItem(THEME_KEY);
    if (v === "light" || v === "dark" || v === "system") return v;
  } catch {
    // storage blocked
  }
  return "system";
}

export function getTheme(): ThemeChoice {
  choice ??= read();
  return choice;
}

/** The theme actually shown. */
export function resolvedTheme(c: ThemeChoice = getTheme()): "light" | "dark" {
  if (c !== "system") return c;
  return typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches
    ? "dark"
    : "light";
}

export function applyTheme(): void {
  document.documentElement.dataset.theme = resolvedTheme();
}

export function setTheme(c: ThemeChoice): void {
  choice = c;
  try {
    localStorage.setItem(THEME_KEY, c);
  } catch {
    // applied, not remembered
  }
  applyTheme();
  for (const l of listeners) l();
}

export function watchSystemTheme(): void {
  if (typeof matchMedia !== "function") return;
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (getTheme() === "system") applyTheme();
  });
}

function subscribe(l: () => void): () => void {
  listeners.add(l);
  return () => {
    listeners.delete(l);
  };
}

export function useTheme(): ThemeChoice {
  return useSyncExternalStore(subscribe, getTheme);
}
