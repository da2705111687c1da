import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { StoredFile } from "../api/files";
import { FIRST_DELAY_MS, IndexingWatch, MAX_DELAY_MS } from "./indexing";

const doc = (status: StoredFile["status"], id = "f1"): StoredFile => ({
  id,
  name: "report.pdf",
  mime: "application/pdf",
  kind: "document",
  size: 10,
  status,
  pages: status === "ready" ? 3 : null,
  error: status === "error" ? "broken PDF" : null,
});

/** A page's file map and a server whose answers the test scripts; calls are timed. */
function setup(answers: (StoredFile | null | Error)[]) {
  const files = new Map<string, StoredFile>();
  const calls: number[] = [];
  const start = Date.now();
  const watch = new IndexingWatch({
    fetchFile: (id) => {
      calls.push(Date.now() - start);
      const next = answers.length ? answers.shift() : doc("indexing", id);
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next ?? null);
    },
    current: (id) => files.get(id),
    changed: (file) => files.set(file.id, file),
  });
  const put = (file: StoredFile) => {
    files.set(file.id, file);
    watch.watch(file);
  };
  return { files, calls, watch, put };
}

describe("a document chip's indexing fallback (live events missed)", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("re-reads the file, backing off, until it is ready", async () => {
    const s = setup([doc("indexing"), doc("indexing"), doc("ready")]);
    s.put(doc("indexing"));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.calls).toEqual([FIRST_DELAY_MS, FIRST_DELAY_MS * 2.5, FIRST_DELAY_MS * 4.75]);
    expect(s.files.get("f1")?.status).toBe("ready");
    expect(s.watch.watching()).toEqual([]);
  });

  it("stops at a failure and shows it", async () => {
    const s = setup([doc("error")]);
    s.put(doc("indexing"));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.calls).toHaveLength(1);
    expect(s.files.get("f1")).toMatchObject({ status: "error", error: "broken PDF" });
  });

  it("asks no more once a live event settled the file", async () => {
    const s = setup([]);
    s.put(doc("indexing"));
    await vi.advanceTimersByTimeAsync(FIRST_DELAY_MS + 10); // one poll: still indexing
    s.files.set("f1", doc("ready")); // the live event arrives
    await vi.advanceTimersByTimeAsync(120_000);
    expect(s.calls).toHaveLength(1);
    expect(s.watch.watching()).toEqual([]);
  });

  it("keeps trying through failed reads, never more often than every 30 s", async () => {
    const s = setup([new Error("offline"), new Error("offline"), ...Array<StoredFile>(12).fill(doc("indexing"))]);
    s.put(doc("indexing"));
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    const gaps = s.calls.slice(1).map((t, i) => t - (s.calls[i] ?? 0));
    expect(s.calls.length).toBeGreaterThan(10);
    expect(Math.max(...gaps)).toBe(MAX_DELAY_MS);
    expect(s.files.get("f1")?.status).toBe("indexing");
    expect(s.watch.watching()).toEqual(["f1"]);
    s.watch.stopAll();
    await vi.advanceTimersByTimeAsync(60_000);
    const n = s.calls.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.calls).toHaveLength(n);
  });

  it("drops a file that is gone, and watches each file once", async () => {
    const s = setup([null]);
    s.put(doc("indexing"));
    s.put(doc("indexing")); // handed in again (upload answer, then a live event)
    s.put(doc("ready", "f2")); // nothing to watch
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.calls).toHaveLength(1);
    expect(s.watch.watching()).toEqual([]);
  });
});

describe("the chat store follows an indexing file", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("polls /api/files/{id} after an upload's answer, and a late 'indexing' never undoes 'ready'", async () => {
    const urls: string[] = [];
    vi.stubGlobal("fetch", (url: string) => {
      urls.push(url);
      return Promise.resolve(new Response(JSON.stringify({ id: "f9", kind: "document", status: "ready", pages: 2 })));
    });
    const { ChatStore } = await import("./chat");
    const chat = new ChatStore();
    chat.fileChanged(doc("indexing", "f9"));
    expect(chat.getState().files.get("f9")?.status).toBe("indexing");
    await vi.advanceTimersByTimeAsync(FIRST_DELAY_MS + 10);
    expect(urls).toEqual(["/api/files/f9"]);
    expect(chat.getState().files.get("f9")).toMatchObject({ status: "ready", pages: 2 });
    chat.fileChanged(doc("indexing", "f9")); // an upload answer arriving after the live event
    expect(chat.getState().files.get("f9")?.status).toBe("ready");
    await vi.advanceTimersByTimeAsync(60_000);
    expect(urls).toHaveLength(1);
  });
});
