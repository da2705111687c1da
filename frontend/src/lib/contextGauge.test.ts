import { describe, expect, it } from "vitest";
import { toContext } from "../api/server";
import type { Message } from "../api/types";
import { contextGauge, measuredAnswer, trimMarker } from "./contextGauge";

let t = 0;
const msg = (id: string, role: Message["role"], extra: Partial<Message> = {}): Message => ({
  id,
  parentId: null,
  role,
  conversationId: "c",
  content: id,
  status: "done",
  createdAt: ++t,
  ...extra,
});
const usage = (prompt: number) => ({ promptTokens: prompt, completionTokens: 5, totalTokens: prompt + 5 });
const noWindow = () => undefined;

describe("contextGauge", () => {
  it("measures the newest answer's reported prompt against the server's window", () => {
    const ctx = toContext({ sent: ["u1"], dropped: [], summarised: [], summary_id: null, window: 8192, budget: 7168, prompt_tokens_estimate: 90 });
    const thread = [msg("u1", "user"), msg("a1", "assistant", { usage: usage(100), model: "m" }), msg("u2", "user"), msg("a2", "assistant", { usage: usage(2048), context: ctx, model: "m" })];
    expect(contextGauge(thread, noWindow)).toEqual({
      used: 2048, window: 8192, budget: 7168, ratio: 0.25, percent: 25, level: "ok", estimated: false,
      dropped: 0, summarised: 0, model: "m",
    });
  });

  it("falls back to the server's estimate, and to the model list's window (local mode)", () => {
    const ctx = toContext({ sent: ["u1"], dropped: ["x"], summarised: [], window: 1000, prompt_tokens_estimate: 750 });
    const g = contextGauge([msg("u1", "user"), msg("a1", "assistant", { context: ctx })], noWindow);
    expect(g).toMatchObject({ used: 750, window: 1000, percent: 75, level: "high", estimated: true, dropped: 1 });

    const local = [msg("u1", "user"), msg("a1", "assistant", { usage: usage(950), model: "tiny" })];
    expect(contextGauge(local, (m) => (m === "tiny" ? 1000 : undefined))).toMatchObject({ percent: 95, level: "full", budget: null });
    const over = [msg("u1", "user"), msg("a1", "assistant", { usage: usage(1500), model: "tiny" })];
    expect(contextGauge(over, () => 1000)).toMatchObject({ ratio: 1, percent: 150, level: "full" });
  });

  it("is null (hidden) when the window or the prompt size is unknown", () => {
    expect(contextGauge([], () => 1000)).toBeNull();
    expect(contextGauge([msg("u1", "user"), msg("a1", "assistant", { usage: usage(10), model: "m" })], noWindow)).toBeNull();
    // A streaming answer has no usage yet: the previous one counts.
    const thread = [msg("a0", "assistant", { usage: usage(40), model: "m" }), msg("u1", "user"), msg("a1", "assistant", { status: "streaming", model: "m" })];
    expect(measuredAnswer(thread)?.id).toBe("a0");
    expect(contextGauge(thread, () => 400)?.percent).toBe(10);
  });
});

describe("trimMarker", () => {
  it("sits above the summary that stands for the trimmed turns", () => {
    const ctx = toContext({ sent: ["u3", "a3", "u4"], dropped: ["u1"], summarised: ["a1", "u2", "a2"], summary_id: "s1", window: 1000 });
    const thread = [
      msg("u1", "user"), msg("a1", "assistant"), msg("u2", "user"), msg("a2", "assistant"), msg("s1", "summary"),
      msg("u3", "user"), msg("a3", "assistant"), msg("u4", "user"), msg("a4", "assistant", { context: ctx }),
    ];
    expect(trimMarker(thread)).toEqual({ beforeId: "s1", dropped: 1, summarised: 3, summaryId: "s1" });
  });

  it("sits above the first message sent in full when turns were only dropped", () => {
    const ctx = toContext({ sent: ["u2"], dropped: ["u1", "a1"], summarised: [] });
    const thread = [msg("u1", "user"), msg("a1", "assistant"), msg("u2", "user"), msg("a2", "assistant", { context: ctx })];
    expect(trimMarker(thread)).toEqual({ beforeId: "u2", dropped: 2, summarised: 0, summaryId: null });
  });

  it("follows the newest answer's record", () => {
    const trimmed = toContext({ sent: ["u2"], dropped: ["u1", "a1"], summarised: [] });
    const whole = toContext({ sent: ["u1", "a1", "u2", "a2", "u3"], dropped: [], summarised: [] });
    const thread = [msg("u1", "user"), msg("a1", "assistant"), msg("u2", "user"), msg("a2", "assistant", { context: trimmed }), msg("u3", "user"), msg("a3", "assistant", { context: whole })];
    expect(trimMarker(thread)).toBeNull();
    expect(trimMarker(thread.slice(0, 4))?.beforeId).toBe("u2");
  });
});
