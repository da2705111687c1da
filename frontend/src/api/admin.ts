/**
 * The admin page's data: who is signed in (GET /api/me) and the admin API under /admin/ (client
 * keys, users' limits, usage, cache, upstreams). The server lets an admin in by the session cookie (or, in
 * single-user mode, as the implicit user); where the server also has an admin key, a 401 asks
 * for it and it is kept in this tab (sessionStorage) and sent as a bearer. Payload mapping and
 * request building live here (formatting in `adminFormat.ts`), free of React, unit-tested alone.
 */

import { errorMessage } from "./openai";

type Json = Record<string, unknown>;

const obj = (v: unknown): Json => (v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown, d = ""): string => (typeof v === "string" ? v : d);
const optStr = (v: unknown): string | null => (typeof v === "string" && v ? v : null);
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
const optNum = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const rows = (v: unknown): Json[] => (Array.isArray(v) ? (v as unknown[]).map(obj) : []);

// ---- payloads -----------------------------------------------------------------------------------

export interface Me {
  name: string;
  isAdmin: boolean;
  singleUser: boolean;
}

export interface ClientKey {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  active: boolean;
  rpm: number | null;
  tpm: number | null;
  budgetTokens: number | null;
  tokensUsed: number;
  models: string[] | null;
  /** Spending budget (in the server's pricing currency), null: none; and what counts against it. */
  budgetCost: number | null;
  costUsed: number;
  /** All-time spend and cache savings by currency. */
  spend: Money;
  saved: Money;
}

/** Amounts by currency: { USD: 1.25, RUB: 300 }. */
export type Money = Record<string, number>;

export interface Counters {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** A chat user with their limits (null: no limit; models null: every model) and all-time usage. */
export interface ChatUser {
  id: string;
  name: string;
  isAdmin: boolean;
  implicit: boolean;
  createdAt: string | null;
  rpm: number | null;
  tpm: number | null;
  budgetTokens: number | null;
  tokensUsed: number;
  models: string[] | null;
  usage: Counters;
  budgetCost: number | null;
  costUsed: number;
  spend: Money;
  saved: Money;
}

export interface UsageDay extends Counters {
  keyId: string | null;
  userId: string | null;
  model: string;
  day: string;
}

export interface UsageTotal extends Counters {
  keyId: string | null;
  name: string | null;
}

export interface UsageUserTotal extends Counters {
  userId: string | null;
  name: string | null;
}

export interface UsageReport {
  days: UsageDay[];
  totals: UsageTotal[];
  users: UsageUserTotal[];
}

export interface CacheTier {
  name: string;
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  hitRatio: number;
  approximate: boolean;
}

export interface CacheStats {
  enabled: boolean;
  inFlight: number;
  tiers: CacheTier[];
}

export interface UpstreamKey {
  key: string;
  state: string;
  inFlight: number;
  successes: number;
  failures: number;
  rateLimited: number;
  cooldown: number;
  lastError: string | null;
}

export interface Upstream {
  name: string;
  type: string;
  baseUrl: string | null;
  keys: UpstreamKey[];
  queue: { inFlight: number; maxConcurrency: number; depth: number; maxQueue: number } | null;
}

export function toMe(v: unknown): Me {
  const o = obj(v);
  return { name: str(o.name), isAdmin: o.is_admin === true, singleUser: o.single_user === true };
}

const money = (v: unknown): Money =>
  Object.fromEntries(Object.entries(obj(v)).filter((e): e is [string, number] => typeof e[1] === "number"));

const costs = (o: Json) => ({
  budgetCost: optNum(o.budget_cost),
  costUsed: num(o.cost_used),
  spend: money(o.spend),
  saved: money(o.saved),
});

const models = (v: unknown): string[] | null =>
  Array.isArray(v) ? v.filter((m): m is string => typeof m === "string") : null;

export function toKey(v: unknown): ClientKey {
  const o = obj(v);
  return {
    id: str(o.id),
    name: str(o.name),
    prefix: str(o.prefix),
    createdAt: str(o.created_at),
    expiresAt: optStr(o.expires_at),
    revokedAt: optStr(o.revoked_at),
    active: o.active === true,
    rpm: optNum(o.rpm),
    tpm: optNum(o.tpm),
    budgetTokens: optNum(o.budget_tokens),
    tokensUsed: num(o.tokens_used),
    models: models(o.models),
    ...costs(o),
  };
}

function toCounters(o: Json): Counters {
  return {
    requests: num(o.requests),
    promptTokens: num(o.prompt_tokens),
    completionTokens: num(o.completion_tokens),
    totalTokens: num(o.total_tokens),
  };
}

export function toUser(v: unknown): ChatUser {
  const o = obj(v);
  return {
    id: str(o.id),
    name: str(o.name),
    isAdmin: o.is_admin === true,
    implicit: o.implicit === true,
    createdAt: optStr(o.created_at),
    rpm: optNum(o.rpm),
    tpm: optNum(o.tpm),
    budgetTokens: optNum(o.budget_tokens),
    tokensUsed: num(o.tokens_used),
    models: models(o.models),
    usage: toCounters(obj(o.usage)),
    ...costs(o),
  };
}

export function toUsage(v: unknown): UsageReport {
  const o = obj(v);
  return {
    days: rows(o.data).map((r) => ({
      ...toCounters(r),
      keyId: optStr(r.key_id),
      userId: optStr(r.user_id),
      model: str(r.model),
      day: str(r.day),
    })),
    totals: rows(o.totals).map((r) => ({ ...toCounters(r), keyId: optStr(r.key_id), name: optStr(r.name) })),
    users: rows(o.users).map((r) => ({ ...toCounters(r), userId: optStr(r.user_id), name: optStr(r.name) })),
  };
}

export function toCache(v: unknown): CacheStats {
  const o = obj(v);
  return {
    enabled: o.enabled === true,
    inFlight: num(o.in_flight),
    tiers: rows(o.tiers).map((t) => ({
      name: str(t.name),
      entries: num(t.entries),
      bytes: num(t.bytes),
      hits: num(t.hits),
      misses: num(t.misses),
      hitRatio: num(t.hit_ratio),
      approximate: t.approximate === true,
    })),
  };
}

export function toUpstreams(v: unknown): Upstream[] {
  return rows(obj(v).data).map((p) => {
    const q = p.queue === null || p.queue === undefined ? null : obj(p.queue);
    return {
      name: str(p.name),
      type: str(p.type),
      baseUrl: optStr(p.base_url),
      keys: rows(p.keys).map((k) => ({
        key: str(k.key),
        state: str(k.state),
        inFlight: num(k.in_flight),
        successes: num(k.successes),
        failures: num(k.failures),
        rateLimited: num(k.rate_limited),
        cooldown: num(k.cooldown_remaining),
        lastError: optStr(k.last_error),
      })),
      queue: q && {
        inFlight: num(q.in_flight),
        maxConcurrency: num(q.max_concurrency),
        depth: num(q.depth),
        maxQueue: num(q.max_queue),
      },
    };
  });
}

// ---- requests -----------------------------------------------------------------------------------

/** What the create-key form holds: text, as typed. */
export interface KeyForm {
  name: string;
  rpm: string;
  tpm: string;
  budget: string;
  budgetCost: string;
  models: string;
  expiresDays: string;
}

export const EMPTY_KEY_FORM: KeyForm = { name: "", rpm: "", tpm: "", budget: "", budgetCost: "", models: "", expiresDays: "" };

export type KeyFormField = keyof KeyForm;

/** A limit as typed: null when empty, the number when whole and above zero, else undefined. */
export function parseLimit(text: string): number | null | undefined {
  const t = text.trim();
  if (!t) return null;
  if (!/^\d+$/.test(t) || Number(t) < 1 || !Number.isSafeInteger(Number(t))) return undefined;
  return Number(t);
}

/** An amount of money as typed: null when empty, the number when above zero, else undefined. */
export function parseAmount(text: string): number | null | undefined {
  const t = text.trim();
  if (!t) return null;
  const n = Number(t);
  return /^\d*\.?\d+$|^\d+\.$/.test(t) && Number.isFinite(n) && n > 0 ? n : undefined;
}

/** The POST /admin/keys body, or the first field that is wrong. Empty limits are left out. */
export function keyCreateBody(form: KeyForm): { body: Json } | { field: KeyFormField } {
  const name = form.name.trim();
  if (!name || name.length > 200) return { field: "name" };
  const body: Json = { name };
  const whole = (field: KeyFormField, key: string): boolean => {
    const limit = parseLimit(form[field]);
    if (limit === undefined) return false;
    if (limit !== null) body[key] = limit;
    return true;
  };
  if (!whole("rpm", "rpm")) return { field: "rpm" };
  if (!whole("tpm", "tpm")) return { field: "tpm" };
  if (!whole("budget", "budget_tokens")) return { field: "budget" };
  const cost = parseAmount(form.budgetCost);
  if (cost === undefined) return { field: "budgetCost" };
  if (cost !== null) body.budget_cost = cost;
  const models = parseModels(form.models);
  if (models.length) body.models = models;
  const days = form.expiresDays.trim();
  if (days) {
    const n = Number(days);
    if (!Number.isFinite(n) || n <= 0) return { field: "expiresDays" };
    body.expires_days = n;
  }
  return { body };
}

/** What a user's limits form holds: text, as typed; an empty field is no limit. */
export interface UserLimitsForm {
  rpm: string;
  tpm: string;
  budget: string;
  budgetCost: string;
  models: string;
}

export type UserLimitsField = keyof UserLimitsForm;

/** The form filled with a user's current limits. */
export function userLimitsForm(u: ChatUser): UserLimitsForm {
  const text = (n: number | null) => (n === null ? "" : String(n));
  return {
    rpm: text(u.rpm),
    tpm: text(u.tpm),
    budget: text(u.budgetTokens),
    budgetCost: text(u.budgetCost),
    models: u.models?.join(", ") ?? "",
  };
}

/**
 * The PATCH /admin/users/{id} body, or the first field that is wrong. Every limit is sent, so
 * the user gets what the form shows: an empty field clears its limit (null).
 */
export function userLimitsBody(form: UserLimitsForm): { body: Json } | { field: UserLimitsField } {
  const rpm = parseLimit(form.rpm);
  if (rpm === undefined) return { field: "rpm" };
  const tpm = parseLimit(form.tpm);
  if (tpm === undefined) return { field: "tpm" };
  const budget = parseLimit(form.budget);
  if (budget === undefined) return { field: "budget" };
  const cost = parseAmount(form.budgetCost);
  if (cost === undefined) return { field: "budgetCost" };
  const models = parseModels(form.models);
  return { body: { rpm, tpm, budget_tokens: budget, budget_cost: cost, models: models.length ? models : null } };
}

/** "a, b  c" → ["a", "b", "c"], without repeats. */
export function parseModels(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

export type Period = "today" | "7d" | "30d" | "all";

/** The GET /admin/usage query for a period ending on `today` (UTC days, inclusive). */
export function usagePath(period: Period, today: Date = new Date()): string {
  if (period === "all") return "/admin/usage";
  const back = { today: 0, "7d": 6, "30d": 29 }[period];
  const since = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - back));
  const day = (d: Date) => d.toISOString().slice(0, 10);
  return `/admin/usage?since=${day(since)}&until=${day(today)}`;
}

export class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "AdminError";
  }
}

export const ADMIN_KEY_STORAGE = "chatgate.adminKey";

/** Headers of an admin call: the CSRF header /api's rules want, and the admin key if given. */
export function adminHeaders(adminKey: string | null, hasBody: boolean): Record<string, string> {
  const headers: Record<string, string> = { Accept: "application/json", "X-Requested-With": "chatgate" };
  if (hasBody) headers["Content-Type"] = "application/json";
  if (adminKey) headers.Authorization = `Bearer ${adminKey}`;
  return headers;
}

export class AdminApi {
  constructor(
    readonly adminKey: string | null = null,
    private readonly fetchImpl: typeof fetch = (...args) => fetch(...args),
  ) {}

  private async call(path: string, method = "GET", body?: Json): Promise<unknown> {
    const res = await this.fetchImpl(path, {
      method,
      credentials: "same-origin",
      headers: adminHeaders(this.adminKey, body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new AdminError(res.status, await errorMessage(res));
    const text = await res.text();
    return text ? (JSON.parse(text) as unknown) : null;
  }

  async me(): Promise<Me> {
    return toMe(await this.call("/api/me"));
  }

  async keys(): Promise<ClientKey[]> {
    return rows(obj(await this.call("/admin/keys")).data).map(toKey);
  }

  /** The new key and its secret, which the server returns this once. */
  async createKey(body: Json): Promise<{ key: ClientKey; secret: string }> {
    const out = await this.call("/admin/keys", "POST", body);
    return { key: toKey(out), secret: str(obj(out).key) };
  }

  async revokeKey(id: string): Promise<ClientKey> {
    return toKey(await this.call(`/admin/keys/${encodeURIComponent(id)}`, "DELETE"));
  }

  async users(): Promise<ChatUser[]> {
    return rows(obj(await this.call("/admin/users")).data).map(toUser);
  }

  /** Set (a value) or clear (null) a user's limits; fields left out stay as they are. */
  async updateUser(id: string, body: Json): Promise<ChatUser> {
    return toUser(await this.call(`/admin/users/${encodeURIComponent(id)}`, "PATCH", body));
  }

  async usage(period: Period): Promise<UsageReport> {
    return toUsage(await this.call(usagePath(period)));
  }

  async cache(): Promise<CacheStats> {
    return toCache(await this.call("/admin/cache"));
  }

  /** How many entries went (the largest tier's count). */
  async flushCache(): Promise<number> {
    return num(obj(await this.call("/admin/cache", "DELETE")).removed);
  }

  async upstreams(): Promise<Upstream[]> {
    return toUpstreams(await this.call("/admin/upstreams"));
  }
}
