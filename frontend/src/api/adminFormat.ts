/**
 * How the admin page shows what the admin API returns: counts, bytes, money, dates, limits and a
 * key's state, in the reader's locale. Free of React, unit-tested alone.
 */

import type { ClientKey, Money } from "./admin";

export type KeyState = "active" | "revoked" | "expired";

export function keyState(k: ClientKey, now: number = Date.now()): KeyState {
  if (k.revokedAt) return "revoked";
  if (k.expiresAt && Date.parse(k.expiresAt) <= now) return "expired";
  return "active";
}

export function formatCount(n: number, locale: string): string {
  return new Intl.NumberFormat(locale).format(n);
}

export function formatPercent(ratio: number, locale: string): string {
  return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 }).format(ratio);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(n: number, locale: string): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(value)} ${UNITS[unit]}`;
}

/** A date and time from the API (ISO, UTC) in the reader's locale and time zone; "" for none. */
export function formatDateTime(iso: string | null, locale: string, timeZone?: string): string {
  if (!iso) return "";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone }).format(t);
}

/** "60 rpm · 10,000 tpm" — the limits a key or user has, or "" when it has none. */
export function formatLimits(k: Pick<ClientKey, "rpm" | "tpm">, locale: string): string {
  const parts: string[] = [];
  if (k.rpm !== null) parts.push(`${formatCount(k.rpm, locale)} rpm`);
  if (k.tpm !== null) parts.push(`${formatCount(k.tpm, locale)} tpm`);
  return parts.join(" · ");
}

/** "1.25 USD + 300 RUB" (largest first by name), "" for nothing. */
export function formatMoney(amounts: Money, locale: string): string {
  const fmt = new Intl.NumberFormat(locale, { maximumSignificantDigits: 6 });
  return Object.entries(amounts)
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([currency, n]) => `${fmt.format(n)} ${currency}`)
    .join(" + ");
}

/** A key's or user's spend ("0.42 USD"), with its spending budget ("0.42 / 5") when it has one. */
export function formatSpend(k: Pick<ClientKey, "spend" | "budgetCost" | "costUsed">, locale: string): string {
  const spent = formatMoney(k.spend, locale) || "0";
  if (k.budgetCost === null) return spent;
  const fmt = new Intl.NumberFormat(locale, { maximumSignificantDigits: 6 });
  return `${spent} (${fmt.format(k.costUsed)} / ${fmt.format(k.budgetCost)})`;
}

/** "1,234 / 5,000" with a budget, else "1,234" (a key's or a user's). */
export function formatKeyUsage(k: Pick<ClientKey, "tokensUsed" | "budgetTokens">, locale: string): string {
  const used = formatCount(k.tokensUsed, locale);
  return k.budgetTokens === null ? used : `${used} / ${formatCount(k.budgetTokens, locale)}`;
}
