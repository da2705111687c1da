import { afterEach, describe, expect, it, vi } from "vitest";
import { listModels, parseChunk, requestBody, streamChat } from "./openai";
import type { GenerationSink, Usage } from "./types";

function sink() {
  const got = { content: "", reasoning: "", usage: null as Usage | null };
  const s: GenerationSink = {
    content: (t) => (got.content += t),
    reasoning: (t) => (got.reasoning += t),
    usage: (u) => (got.usage = u),
    replace: (c, r) => {
      got.content = c;
      got.reasoning = r;
    },
  };
  return { got, s };
}

function sse(events: string[], status = 200): Response {
  const body = events.map((e) => `data: ${e}\n\n`).join("");
  return new Response(body, { status, headers: { "Content-Type": "text/event-stream" } });
}

const chunk = (delta: object, extra: object = {}) =>
  JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: null }], ...extra });

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("parseChunk", () => {
  it("reads content, reasoning_content, usage and errors", () => {
    expect(parseChunk(chunk({ content: "Hi" }))).toEqual({ content: "Hi" });
    expect(parseChunk(chunk({ content: null, reasoning_content: "hm" }))).toEqual({ reasoning: "hm" });
    expect(
      parseChunk(
        JSON.stringify({
          choices: [],
          usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8, completion_tokens_details: { reasoning_tokens: 2 } },
        }),
      ),
    ).toEqual({ usage: { promptTokens: 3, completionTokens: 5, totalTokens: 8, reasoningTokens: 2 } });
    expect(parseChunk(JSON.stringify({ error: { message: "boom", type: "server_error" } }))).toEqual({ error: "boom" });
    expect(parseChunk("not json")).toBeNull();
  });
});

describe("requestBody", () => {
  it("puts the system prompt first and sends only set parameters", () => {
    const body = requestBody({ model: "m", systemPrompt: "Be brief", temperature: 0.2, maxTokens: null }, [
      { role: "user", content: "hi" },
    ]);
    expect(body).toEqual({
      model: "m",
      messages: [
        { role: "system", content: "Be brief" },
        { role: "user", content: "hi" },
      ],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
    });
  });
});

describe("streamChat", () => {
  it("streams to the sink and ends done on [DONE]", async () => {
    vi.stubGlobal("fetch", vi.fn(() => Promise.resolve(sse([chunk({ reasoning_content: "r" }), chunk({ content: "a" }), chunk({ content: "b" }), "[DONE]"]))));
    const { got, s } = sink();
    const r = await streamChat({}, s, new AbortController().signal);
    expect(r).toEqual({ status: "done" });
    expect(got).toMatchObject({ content: "ab", reasoning: "r" });
  });

  it("reports an error event after the stream started", async () => {
    vi.stubGlobal("fetch", vi.fn(() => Promise.resolve(sse([chunk({ content: "a" }), JSON.stringify({ error: { message: "upstream died" } })]))));
    const { got, s } = sink();
    expect(await streamChat({}, s, new AbortController().signal)).toEqual({ status: "error", error: "upstream died" });
    expect(got.content).toBe("a");
  });

  it("never takes a cut stream for a finished one", async () => {
    vi.stubGlobal("fetch", vi.fn(() => Promise.resolve(sse([chunk({ content: "a" })]))));
    const r = await streamChat({}, sink().s, new AbortController().signal);
    expect(r.status).toBe("error");
  });

  it("reports an HTTP error's OpenAI message", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(() =>
        Promise.resolve(new Response(JSON.stringify({ error: { message: "model not found" } }), { status: 404 })),
      ),
    );
    expect(await streamChat({}, sink().s, new AbortController().signal)).toEqual({
      status: "error",
      error: "model not found",
    });
  });

  it("ends stopped when aborted", async () => {
    const controller = new AbortController();
    vi.stubGlobal(
      "fetch",
      vi.fn((_url: string, init: RequestInit) => {
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(new TextEncoder().encode(`data: ${chunk({ content: "a" })}\n\n`));
            init.signal?.addEventListener("abort", () => {
              c.error(new DOMException("aborted", "AbortError"));
            });
          },
        });
        return Promise.resolve(new Response(body, { status: 200 }));
      }),
    );
    const { got, s } = sink();
    const p = streamChat({}, s, controller.signal);
    await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    expect(await p).toEqual({ status: "stopped" });
    expect(got.content).toBe("a");
  });
});

describe("listModels", () => {
  it("leaves out embedding-only models, which cannot chat", async () => {
    const data = [
      { id: "local", owned_by: "local", context_window: 2048 },
      { id: "local-embed", owned_by: "local-embed", capabilities: ["embeddings"] },
      { id: "both", capabilities: ["chat", "embeddings"] },
    ];
    vi.stubGlobal("fetch", vi.fn(() => Promise.resolve(new Response(JSON.stringify({ data }), { status: 200 }))));
    const models = await listModels();
    expect(models.map((m) => m.id)).toEqual(["local", "both"]);
    expect(models[0]).toEqual({ id: "local", ownedBy: "local", contextWindow: 2048 });
  });
});
