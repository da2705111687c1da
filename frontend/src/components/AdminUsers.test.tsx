import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { toUser } from "../api/admin";
import { translate } from "../i18n";
import { LimitsForm, UsersTable } from "./AdminUsers";

const USER = {
  id: "u_1",
  name: "ann",
  is_admin: false,
  implicit: false,
  rpm: 60,
  tpm: null,
  budget_tokens: 5000,
  tokens_used: 1234,
  models: ["local", "fake-model"],
  usage: { requests: 7, prompt_tokens: 1000, completion_tokens: 234, total_tokens: 1234 },
  budget_cost: 5,
  cost_used: 0.25,
  spend: { USD: 0.25, RUB: 12 },
  saved: { USD: 0.5 },
};

const t = (key: Parameters<typeof translate>[1], vars?: Record<string, string | number>) => translate("en", key, vars);
const noop = () => undefined;

describe("UsersTable", () => {
  const html = renderToStaticMarkup(
    <UsersTable
      users={[
        toUser(USER),
        toUser({ ...USER, id: "u_2", name: "local", is_admin: true, implicit: true, rpm: null, budget_tokens: null, models: null, usage: {} }),
      ]}
      t={t}
      locale="en"
      onEdit={noop}
    />,
  );
  const row = (id: string) => new RegExp(`<tr data-user-id="${id}">(.*?)</tr>`).exec(html)?.[1] ?? "";

  it("shows usage, budget used / limit, rate limits and models", () => {
    const ann = row("u_1");
    expect(ann).toContain(">ann<");
    expect(ann).toContain(">7<"); // requests
    expect(ann).toContain(">1,234<"); // tokens
    expect(ann).toContain("1,234 / 5,000");
    expect(ann).toContain("60 rpm");
    expect(ann).toContain("local, fake-model");
    expect(ann).toContain("12 RUB + 0.25 USD (0.25 / 5)"); // spend (used / budget)
    expect(ann).toContain("<small>0.5 USD</small>"); // saved by the cache
    expect(ann).toContain('aria-label="Edit limits of “ann”"');
  });

  it("says when there is no limit, and marks the admin and the single-user user", () => {
    const local = row("u_2");
    expect(local).toContain("No budget");
    expect(local).toContain("No limits");
    expect(local).toContain("All models");
    expect(local).toContain("admin");
    expect(local).toContain("single-user mode");
  });

  it("has a caption and column headers", () => {
    expect(html).toContain("<caption");
    expect(html.match(/<th scope="col"/g)?.length).toBe(8);
  });
});

describe("LimitsForm", () => {
  it("is filled with the user's limits, empty where there is none", () => {
    const html = renderToStaticMarkup(<LimitsForm user={toUser(USER)} onSaved={noop} onCancel={noop} />);
    expect(html).toContain('aria-label="Limits of “ann”"');
    const value = (name: string) => new RegExp(`name="${name}"[^>]*value="([^"]*)"`).exec(html)?.[1];
    expect(value("rpm")).toBe("60");
    expect(value("tpm")).toBe("");
    expect(value("budget")).toBe("5000");
    expect(value("models")).toBe("local, fake-model");
    expect(html).toContain(">Save<");
    expect(html).toContain(">Cancel<");
  });
});
