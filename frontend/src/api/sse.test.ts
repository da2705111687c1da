import { describe, expect, it } from "vitest";
import { readSse, SseParser, type SseEvent } from "./sse";

function feed(pieces: string[]): SseEvent[] {
  const p = new SseParser();
  return pieces.flatMap((x) => p.push(x));
}

describe("SseParser", () => {
  it("parses events split anywhere", () => {
    const text = 'data: {"a":1}\n\ndata: [DONE]\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const events = feed([text.slice(0, cut), text.slice(cut)]);
      expect(events.map((e) => e.data)).toEqual(['{"a":1}', "[DONE]"]);
    }
  });

  it("handles CRLF and CR line endings, also split between pieces", () => {
    expect(feed(["data: a\r\n\r\ndata: b\r\r"]).map((e) => e.data)).toEqual(["a", "b"]);
    expect(feed(["data: a\r", "\n\r", "\n"]).map((e) => e.data)).toEqual(["a"]);
  });

  it("joins multi-line data, skips comments, keeps ids, event names and retry", () => {
    const events = feed([": keep-alive\n\nretry: 1000\n\nid: 7\nevent: delta\ndata: x\ndata: y\n\ndata: z\n\n"]);
    expect(events).toEqual([
      { id: "7", event: "delta", data: "x\ny" },
      { id: "7", event: "message", data: "z" },
    ]);
  });

  it("tracks the last event id for resuming", () => {
    const p = new SseParser();
    p.push("id: 3\ndata: a\n\nid: 4\ndata: b\n\n");
    expect(p.lastEventId).toBe("4");
  });

  it("drops an unterminated event at the end", () => {
    const p = new SseParser();
    expect(p.push("data: partial")).toEqual([]);
    p.end();
    expect(p.push("\n\n")).toEqual([]);
  });

  it("handles a field without a colon and a value without the space", () => {
    expect(feed(["data\n\ndata:x\n\n"]).map((e) => e.data)).toEqual(["", "x"]);
  });
});

describe("readSse", () => {
  it("decodes UTF-8 split across chunks", async () => {
    const bytes = new TextEncoder().encode("data: Привет, 世界\n\n");
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const b of bytes) c.enqueue(new Uint8Array([b]));
        c.close();
      },
    });
    const got: string[] = [];
    await readSse(body, (e) => got.push(e.data));
    expect(got).toEqual(["Привет, 世界"]);
  });
});
