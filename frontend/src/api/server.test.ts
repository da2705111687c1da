import { describe, expect, it } from "vitest";
import { interpretEvent, toContext, toConversation, toLiveEvent, toMessage } from "./server";

const ev = (data: object) => ({ id: "1", event: "message", data: JSON.stringify(data) });

describe("interpretEvent (GET /api/generations/{id}/events)", () => {
  it("reads deltas, snapshots and the end", () => {
    expect(interpretEvent(ev({ type: "start", message_id: "m1" }))).toEqual({});
    expect(interpretEvent(ev({ type: "delta", content: "a", reasoning: "r" }))).toEqual({ content: "a", reasoning: "r" });
    expect(interpretEvent(ev({ type: "snapshot", message: { content: "all", reasoning: null } }))).toEqual({
      snapshot: { content: "all", reasoning: "" },
    });
    expect(
      interpretEvent(ev({ type: "done", status: "done", usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }, error: null })),
    ).toEqual({ end: { status: "done" }, usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 } });
    expect(interpretEvent(ev({ type: "done", status: "stopped", usage: null, error: null }))).toEqual({
      end: { status: "stopped" },
    });
    expect(interpretEvent(ev({ type: "done", status: "error", error: { message: "429" } }))).toEqual({
      end: { status: "error", error: "429" },
    });
  });
});

describe("payload mapping", () => {
  it("maps a conversation with its sampling params", () => {
    const c = toConversation({
      id: "c1",
      title: "T",
      model: "fake-model",
      system_prompt: null,
      params: { temperature: 0.5, max_tokens: 64 },
      pinned: true,
      created_at: "2026-01-01T00:00:00",
      updated_at: "2026-01-02T00:00:00Z",
      active_leaf_id: "m9",
    });
    expect(c).toEqual({
      id: "c1",
      title: "T",
      pinned: true,
      createdAt: Date.UTC(2026, 0, 1),
      updatedAt: Date.UTC(2026, 0, 2),
      settings: { model: "fake-model", systemPrompt: "", temperature: 0.5, maxTokens: 64 },
      leafId: "m9",
    });
  });

  it("maps a message with siblings, usage and context", () => {
    const m = toMessage(
      {
        id: "m2",
        parent_id: "m1",
        role: "assistant",
        content: "hi",
        reasoning: null,
        status: "done",
        usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 },
        context: { sent: ["m1"], dropped: ["m0"], summarised: [], summary_id: null },
        sibling_ids: ["m2", "m3"],
        created_at: "2026-01-01T00:00:00Z",
      },
      "c1",
    );
    expect(m).toMatchObject({
      id: "m2",
      conversationId: "c1",
      parentId: "m1",
      role: "assistant",
      siblingIds: ["m2", "m3"],
      context: { sent: 1, dropped: 1, summarised: 0, summaryId: null },
      usage: { promptTokens: 4, completionTokens: 2, totalTokens: 6 },
    });
    expect(m.reasoning).toBeUndefined();
  });
});

describe("toContext (an answer's context record)", () => {
  const rest = { summary_id: "s1", window: 131072, budget: 127000, reply_tokens: 4096, prompt_tokens_estimate: 900 };
  const expected = {
    sent: 3,
    dropped: 2,
    summarised: 4,
    summaryId: "s1",
    firstSentId: "m7",
    window: 131072,
    budget: 127000,
    promptEstimate: 900,
  };

  it("reads the counts the conversation carries", () => {
    const compact = { sent_count: 3, dropped_count: 2, summarised_count: 4, first_sent_id: "m7", ...rest };
    expect(toContext(compact)).toEqual(expected);
  });

  it("falls back to the id lists of older records", () => {
    const old = { sent: ["m7", "m8", "m9"], dropped: ["m0", "m1"], summarised: ["m2", "m3", "m4", "m5"], ...rest };
    expect(toContext(old)).toEqual(expected);
  });

  it("prefers the counts when a full record has both", () => {
    const both = { sent_count: 3, dropped_count: 2, summarised_count: 4, first_sent_id: "m7", sent: ["m7"], ...rest };
    expect(toContext(both)).toEqual(expected);
  });

  it("has no first sent id when nothing was sent, and ignores what is not a record", () => {
    expect(toContext({ sent_count: 0, dropped_count: 0, summarised_count: 0, first_sent_id: null, summary_id: null })).toEqual({
      sent: 0,
      dropped: 0,
      summarised: 0,
      summaryId: null,
    });
    expect(toContext(null)).toBeUndefined();
    expect(toContext("x")).toBeUndefined();
  });
});

describe("toLiveEvent (GET /api/events, watch on /api/ws)", () => {
  it("maps the server's user events and ignores anything else", () => {
    expect(toLiveEvent({ type: "conversation", action: "deleted", conversation_id: "c1" })).toEqual({
      kind: "conversation",
      action: "deleted",
      conversationId: "c1",
    });
    expect(
      toLiveEvent({ type: "generation", action: "started", conversation_id: "c1", generation_id: "g", message_id: "m" }),
    ).toEqual({ kind: "started", conversationId: "c1", generationId: "g", messageId: "m" });
    expect(toLiveEvent({ type: "resync" })).toEqual({ kind: "resync" });
    expect(toLiveEvent({ type: "conversation", action: "exploded", conversation_id: "c1" })).toBeNull();
    expect(toLiveEvent({ type: "delta", seq: 1, generation_id: "g" })).toBeNull();
  });
});

describe("files, citations and side by side (the issue 15 contract)", () => {
  it("a message carries its attachments and an answer its citations", () => {
    const m = toMessage(
      {
        id: "m1",
        role: "assistant",
        content: "x",
        attachments: [{ id: "file_a", name: "a.png", mime: "image/png", kind: "image", size: 5 }],
        citations: [{ file_id: "file_d", name: "d.pdf", page: 3, n: 7, text: "passage" }],
      },
      "c1",
    );
    expect(m.attachments).toEqual([{ id: "file_a", name: "a.png", mime: "image/png", kind: "image", size: 5 }]);
    expect(m.citations).toEqual([{ fileId: "file_d", name: "d.pdf", page: 3, n: 7, text: "passage" }]);
    const plain = toMessage({ id: "m2", role: "user", content: "y", attachments: [], citations: [] }, "c1");
    expect(plain.attachments).toBeUndefined();
    expect(plain.citations).toBeUndefined();
  });

  it("a file event is a live update with the file", () => {
    expect(toLiveEvent({ type: "file", file: { id: "file_a", status: "ready", kind: "document", pages: 4 } })).toMatchObject({
      kind: "file",
      file: { id: "file_a", status: "ready", pages: 4 },
    });
  });

  it("send posts models and attachment ids and follows every generation", async () => {
    const posted: unknown[] = [];
    const original = globalThis.fetch;
    globalThis.fetch = ((url: string, init?: RequestInit) => {
      if (init?.method === "POST" && url.endsWith("/messages")) {
        posted.push(JSON.parse(init.body as string));
        const out = {
          generation_id: "g1",
          message_id: "a1",
          user_message_id: "u1",
          parent_id: "u1",
          generations: [
            { id: "g1", model: "m1", message_id: "a1" },
            { id: "g2", model: "m2", message_id: "a2" },
          ],
        };
        return Promise.resolve(new Response(JSON.stringify(out), { status: 202 }));
      }
      // The events of each generation: done at once.
      const body = 'data: {"type":"done","status":"done"}\n\n';
      return Promise.resolve(new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } }));
    }) as typeof fetch;
    try {
      const { ServerBackend } = await import("./server");
      const sink = { reasoning: () => undefined, content: () => undefined, usage: () => undefined, replace: () => undefined };
      const c = toConversation({ id: "c1", model: "m1" });
      const att = { id: "file_a", name: "a.png", mime: "image/png", kind: "image" as const, size: 5 };
      const started = await new ServerBackend().send(
        { conversation: c, history: [], parentId: null, content: "hi", models: ["m1", "m2"], attachments: [att] },
        [sink, sink],
      );
      expect(posted).toEqual([{ content: "hi", parent_id: null, models: ["m1", "m2"], attachments: ["file_a"] }]);
      expect(started.userMessage?.attachments).toEqual([att]);
      expect(started.answers.map((a) => [a.assistant.id, a.assistant.model, a.assistant.generationId, a.assistant.parentId])).toEqual([
        ["a1", "m1", "g1", "u1"],
        ["a2", "m2", "g2", "u1"],
      ]);
      expect(await Promise.all(started.answers.map((a) => a.done))).toEqual([{ status: "done" }, { status: "done" }]);
    } finally {
      globalThis.fetch = original;
    }
  });
});
