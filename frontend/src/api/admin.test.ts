import { describe, expect, it } from "vitest";
import {
  AdminApi,
  AdminError,
  EMPTY_KEY_FORM,
  adminHeaders,
  keyCreateBody,
  parseLimit,
  parseModels,
  toCache,
  toKey,
  toUpstreams,
  toUsage,
  toUser,
  usagePath,
  userLimitsBody,
  userLimitsForm,
  type ClientKey,
} from "./admin";
import {
  formatBytes,
  formatDateTime,
  formatKeyUsage,
  formatLimits,
  formatMoney,
  formatPercent,
  formatSpend,
  keyState,
} from "./adminFormat";

const KEY = {
  id: "key_1",
  name: "ci-bot",
  prefix: "sk-cg-ab12",
  created_at: "2025-03-01T10:00:00Z",
  expires_at: "2025-04-01T10:00:00Z",
  revoked_at: null,
  active: true,
  rpm: 60,
  tpm: 10000,
  budget_tokens: 5000,
  tokens_used: 1234,
  models: ["local", "fake-model"],
};

describe("keyCreateBody", () => {
  it("leaves empty limits out", () => {
    expect(keyCreateBody({ ...EMPTY_KEY_FORM, name: "  ci-bot " })).toEqual({ body: { name: "ci-bot" } });
  });

  it("maps every field to the API's names", () => {
    const form = {
      name: "bot",
      rpm: "60",
      tpm: " 1000 ",
      budget: "50000",
      budgetCost: " 2.5 ",
      models: "local, fake-model local",
      expiresDays: "1.5",
    };
    expect(keyCreateBody(form)).toEqual({
      body: {
        name: "bot",
        rpm: 60,
        tpm: 1000,
        budget_tokens: 50000,
        budget_cost: 2.5,
        models: ["local", "fake-model"],
        expires_days: 1.5,
      },
    });
    expect(keyCreateBody({ ...form, budgetCost: "0" })).toEqual({ field: "budgetCost" });
    expect(keyCreateBody({ ...form, budgetCost: "5$" })).toEqual({ field: "budgetCost" });
  });

  it.each([
    [{ name: "   " }, "name"],
    [{ name: "x".repeat(201) }, "name"],
    [{ name: "a", rpm: "0" }, "rpm"],
    [{ name: "a", rpm: "1.5" }, "rpm"],
    [{ name: "a", tpm: "-3" }, "tpm"],
    [{ name: "a", budget: "lots" }, "budget"],
    [{ name: "a", budget: "99999999999999999999" }, "budget"],
    [{ name: "a", expiresDays: "0" }, "expiresDays"],
    [{ name: "a", expiresDays: "soon" }, "expiresDays"],
  ] as const)("%j is wrong in %s", (fields, field) => {
    expect(keyCreateBody({ ...EMPTY_KEY_FORM, ...fields })).toEqual({ field });
  });
});

const USER = {
  id: "u_1",
  name: "ann",
  is_admin: false,
  implicit: false,
  created_at: "2025-03-01T10:00:00Z",
  rpm: 60,
  tpm: null,
  budget_tokens: 5000,
  tokens_used: 1234,
  models: ["local", "fake-model"],
  usage: { requests: 7, prompt_tokens: 1000, completion_tokens: 234, total_tokens: 1234 },
};

describe("parseLimit", () => {
  it.each([
    ["", null],
    ["  ", null],
    [" 60 ", 60],
    ["0", undefined],
    ["-1", undefined],
    ["1.5", undefined],
    ["1e3", undefined],
    ["99999999999999999999", undefined],
  ] as const)("%j → %s", (text, want) => {
    expect(parseLimit(text)).toBe(want);
  });
});

describe("user limits", () => {
  it("fill the form from the user, empty where there is no limit", () => {
    expect(userLimitsForm(toUser(USER))).toEqual({ rpm: "60", tpm: "", budget: "5000", budgetCost: "", models: "local, fake-model" });
    expect(userLimitsForm(toUser({ ...USER, rpm: null, budget_tokens: null, models: null }))).toEqual({
      rpm: "",
      tpm: "",
      budget: "",
      budgetCost: "",
      models: "",
    });
    expect(userLimitsForm(toUser({ ...USER, budget_cost: 0.5 })).budgetCost).toBe("0.5");
  });

  it("send every limit: a value sets it, an empty field clears it (null)", () => {
    expect(userLimitsBody({ rpm: "30", tpm: "", budget: " 100000 ", budgetCost: "12.5", models: "a, b a" })).toEqual({
      body: { rpm: 30, tpm: null, budget_tokens: 100000, budget_cost: 12.5, models: ["a", "b"] },
    });
    expect(userLimitsBody({ rpm: "", tpm: "", budget: "", budgetCost: "", models: " , " })).toEqual({
      body: { rpm: null, tpm: null, budget_tokens: null, budget_cost: null, models: null },
    });
  });

  it("a round trip of the form changes nothing", () => {
    const u = toUser(USER);
    expect(userLimitsBody(userLimitsForm(u))).toEqual({
      body: { rpm: 60, tpm: null, budget_tokens: 5000, budget_cost: null, models: ["local", "fake-model"] },
    });
  });

  it.each([
    [{ rpm: "0" }, "rpm"],
    [{ tpm: "fast" }, "tpm"],
    [{ budget: "-5" }, "budget"],
    [{ rpm: "1", budget: "1.5" }, "budget"],
    [{ budgetCost: "-1" }, "budgetCost"],
  ] as const)("%j is wrong in %s", (fields, field) => {
    expect(userLimitsBody({ rpm: "", tpm: "", budget: "", budgetCost: "", models: "", ...fields })).toEqual({ field });
  });
});

describe("parseModels", () => {
  it("splits on commas and spaces, without repeats or blanks", () => {
    expect(parseModels(" a,b  c,,a ")).toEqual(["a", "b", "c"]);
    expect(parseModels("  ")).toEqual([]);
  });
});

describe("usagePath", () => {
  const today = new Date("2025-03-05T23:30:00Z");
  it.each([
    ["today", "/admin/usage?since=2025-03-05&until=2025-03-05"],
    ["7d", "/admin/usage?since=2025-02-27&until=2025-03-05"],
    ["30d", "/admin/usage?since=2025-02-04&until=2025-03-05"],
    ["all", "/admin/usage"],
  ] as const)("%s → %s", (period, path) => {
    expect(usagePath(period, today)).toBe(path);
  });
});

describe("payloads", () => {
  it("reads a key", () => {
    const k = toKey(KEY);
    expect(k).toMatchObject({ id: "key_1", rpm: 60, budgetTokens: 5000, tokensUsed: 1234, revokedAt: null });
    expect(k.models).toEqual(["local", "fake-model"]);
    expect(toKey({ ...KEY, models: null, rpm: null }).models).toBeNull();
  });

  it("reads usage, anonymous rows included", () => {
    const report = toUsage({
      data: [{ key_id: null, user_id: "u_1", model: "local", day: "2025-03-05", requests: 2, prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }],
      totals: [{ key_id: "key_1", name: "ci-bot", requests: 1, prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }],
      users: [
        { user_id: "u_1", name: "ann", requests: 2, prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
        { user_id: null, name: null, requests: 1, prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      ],
    });
    expect(report.days[0]).toEqual({ keyId: null, userId: "u_1", model: "local", day: "2025-03-05", requests: 2, promptTokens: 10, completionTokens: 5, totalTokens: 15 });
    expect(report.totals[0]?.name).toBe("ci-bot");
    expect(report.users).toEqual([
      { userId: "u_1", name: "ann", requests: 2, promptTokens: 10, completionTokens: 5, totalTokens: 15 },
      { userId: null, name: null, requests: 1, promptTokens: 1, completionTokens: 2, totalTokens: 3 },
    ]);
  });

  it("reads usage from a server without users: none of them", () => {
    const report = toUsage({ data: [{ key_id: "k", model: "m", day: "2025-03-05" }], totals: [] });
    expect(report.users).toEqual([]);
    expect(report.days[0]?.userId).toBeNull();
  });

  it("reads a user", () => {
    const u = toUser(USER);
    expect(u).toMatchObject({ id: "u_1", name: "ann", isAdmin: false, rpm: 60, tpm: null, budgetTokens: 5000, tokensUsed: 1234 });
    expect(u.models).toEqual(["local", "fake-model"]);
    expect(u.usage).toEqual({ requests: 7, promptTokens: 1000, completionTokens: 234, totalTokens: 1234 });
    expect(toUser({ ...USER, models: null, usage: undefined }).usage.requests).toBe(0);
  });

  it("reads cache stats, on and off", () => {
    expect(toCache({ enabled: false, tiers: [] })).toEqual({ enabled: false, inFlight: 0, tiers: [] });
    const on = toCache({ enabled: true, in_flight: 1, tiers: [{ name: "memory", entries: 3, bytes: 2048, hits: 4, misses: 1, hit_ratio: 0.8, approximate: false }] });
    expect(on.tiers[0]).toEqual({ name: "memory", entries: 3, bytes: 2048, hits: 4, misses: 1, hitRatio: 0.8, approximate: false });
  });

  it("reads upstreams with and without a queue", () => {
    const [p, q] = toUpstreams({
      data: [
        { name: "fake", type: "openai", base_url: "http://x/v1", keys: [{ key: "sk-…6789", state: "cooling", cooldown_remaining: 2.5, last_error: "429" }], queue: null },
        { name: "q", type: "openai", base_url: null, keys: [], queue: { in_flight: 1, max_concurrency: 2, depth: 0, max_queue: 5 } },
      ],
    });
    expect(p?.keys[0]).toMatchObject({ key: "sk-…6789", state: "cooling", cooldown: 2.5, lastError: "429", inFlight: 0 });
    expect(p?.queue).toBeNull();
    expect(q?.queue).toEqual({ inFlight: 1, maxConcurrency: 2, depth: 0, maxQueue: 5 });
  });
});

describe("requests", () => {
  it("sends the CSRF header, JSON only with a body, the admin key only when given", () => {
    expect(adminHeaders(null, false)).toEqual({ Accept: "application/json", "X-Requested-With": "chatgate" });
    expect(adminHeaders("k", true)).toMatchObject({ "Content-Type": "application/json", Authorization: "Bearer k" });
  });

  function recorder(status: number, body: unknown) {
    const calls: { url: string; init: RequestInit }[] = [];
    const fetchImpl: typeof fetch = (url, init) => {
      calls.push({ url: url instanceof Request ? url.url : url.toString(), init: init ?? {} });
      return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } }));
    };
    return { calls, fetchImpl };
  }

  it("creates a key and returns its secret", async () => {
    const { calls, fetchImpl } = recorder(201, { ...KEY, key: "sk-cg-secret" });
    const out = await new AdminApi("adm", fetchImpl).createKey({ name: "ci-bot" });
    expect(out.secret).toBe("sk-cg-secret");
    expect(out.key.name).toBe("ci-bot");
    const [call] = calls;
    expect(call?.url).toBe("/admin/keys");
    expect(call?.init.method).toBe("POST");
    expect(call?.init.body).toBe('{"name":"ci-bot"}');
    expect((call?.init.headers as Record<string, string>).Authorization).toBe("Bearer adm");
  });

  it("revokes by id, escaped", async () => {
    const { calls, fetchImpl } = recorder(200, { ...KEY, active: false, revoked_at: "2025-03-02T00:00:00Z" });
    const k = await new AdminApi(null, fetchImpl).revokeKey("key/1");
    expect(calls[0]?.url).toBe("/admin/keys/key%2F1");
    expect(calls[0]?.init.method).toBe("DELETE");
    expect(calls[0]?.init.body).toBeUndefined();
    expect(keyState(k)).toBe("revoked");
  });

  it("turns an error body into an AdminError with the status", async () => {
    const { fetchImpl } = recorder(403, { error: { message: "This endpoint is for admins only.", type: "permission_error" } });
    const err: unknown = await new AdminApi(null, fetchImpl).keys().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdminError);
    expect((err as AdminError).status).toBe(403);
    expect((err as AdminError).message).toBe("This endpoint is for admins only.");
  });

  it("lists users and patches one's limits, escaped", async () => {
    const listed = recorder(200, { object: "list", data: [USER] });
    expect((await new AdminApi(null, listed.fetchImpl).users())[0]?.name).toBe("ann");
    expect(listed.calls[0]?.url).toBe("/admin/users");
    const { calls, fetchImpl } = recorder(200, { ...USER, rpm: null });
    const u = await new AdminApi(null, fetchImpl).updateUser("u/1", { rpm: null });
    expect(u.rpm).toBeNull();
    expect(calls[0]?.url).toBe("/admin/users/u%2F1");
    expect(calls[0]?.init.method).toBe("PATCH");
    expect(calls[0]?.init.body).toBe('{"rpm":null}');
    expect((calls[0]?.init.headers as Record<string, string>)["X-Requested-With"]).toBe("chatgate");
  });

  it("reads the flush count", async () => {
    const { fetchImpl } = recorder(200, { removed: 7, per_tier: { memory: 7, disk: 7 } });
    expect(await new AdminApi(null, fetchImpl).flushCache()).toBe(7);
  });
});

describe("formatting", () => {
  const key: ClientKey = toKey(KEY);

  it("states: active, expired, revoked", () => {
    expect(keyState(key, Date.parse("2025-03-15T00:00:00Z"))).toBe("active");
    expect(keyState(key, Date.parse("2025-04-02T00:00:00Z"))).toBe("expired");
    expect(keyState({ ...key, revokedAt: "2025-03-02T00:00:00Z" })).toBe("revoked");
    expect(keyState({ ...key, expiresAt: null }, Date.parse("2099-01-01T00:00:00Z"))).toBe("active");
  });

  it("limits and usage", () => {
    expect(formatLimits(toUser(USER), "en")).toBe("60 rpm");
    expect(formatKeyUsage(toUser(USER), "en")).toBe("1,234 / 5,000");
    expect(formatLimits(key, "en")).toBe("60 rpm · 10,000 tpm");
    expect(formatLimits({ ...key, rpm: null, tpm: null }, "en")).toBe("");
    expect(formatKeyUsage(key, "en")).toBe("1,234 / 5,000");
    expect(formatKeyUsage({ ...key, budgetTokens: null }, "en")).toBe("1,234");
  });

  it("bytes and percentages", () => {
    expect(formatBytes(0, "en")).toBe("0 B");
    expect(formatBytes(1536, "en")).toBe("1.5 KiB");
    expect(formatBytes(64 * 1024 * 1024, "en")).toBe("64 MiB");
    expect(formatBytes(150 * 1024, "en")).toBe("150 KiB");
    expect(formatPercent(0.8, "en")).toBe("80%");
    expect(formatPercent(1 / 3, "en")).toBe("33.3%");
  });

  it("dates in the reader's locale", () => {
    expect(formatDateTime(null, "en")).toBe("");
    expect(formatDateTime("2025-03-01T10:00:00Z", "en", "UTC")).toBe("Mar 1, 2025, 10:00 AM");
    expect(formatDateTime("garbage", "en")).toBe("garbage");
  });
});

describe("spend and savings", () => {
  it("maps a key's money fields, ignoring what is not a number", () => {
    const k = toKey({ ...KEY, budget_cost: 5, cost_used: 0.42, spend: { USD: 0.42, RUB: 300, XXX: "no" }, saved: { USD: 1.5 } });
    expect(k.budgetCost).toBe(5);
    expect(k.costUsed).toBe(0.42);
    expect(k.spend).toEqual({ USD: 0.42, RUB: 300 });
    expect(k.saved).toEqual({ USD: 1.5 });
    expect(toKey(KEY).budgetCost).toBeNull();
    expect(toKey(KEY).spend).toEqual({});
  });

  it("formats amounts by currency and the budget next to them", () => {
    expect(formatMoney({ USD: 0.00048, RUB: 300, EUR: 0 }, "en")).toBe("300 RUB + 0.00048 USD");
    expect(formatMoney({}, "en")).toBe("");
    const k = toKey({ ...KEY, budget_cost: 5, cost_used: 0.42, spend: { USD: 0.42 } });
    expect(formatSpend(k, "en")).toBe("0.42 USD (0.42 / 5)");
    expect(formatSpend(toKey(KEY), "en")).toBe("0");
  });
});
