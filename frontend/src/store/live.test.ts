import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { StoredFile } from "../api/files";
import { LiveUpdates, type LiveTarget } from "./live";

class Target implements LiveTarget {
  active: string | null = "c1";
  streaming = new Set<string>();
  mine = new Set<string>();
  calls: string[] = [];
  pending: Promise<void> = Promise.resolve();
  activeId(): string | null {
    return this.active;
  }
  streamingIn(id: string): boolean {
    return this.streaming.has(id);
  }
  settled(): Promise<void> {
    return this.pending;
  }
  startedHere(id: string): boolean {
    return this.mine.has(id);
  }
  refreshList(): Promise<void> {
    this.calls.push("list");
    return Promise.resolve();
  }
  reloadAndFollow(id: string): Promise<void> {
    this.calls.push(`reload ${id}`);
    return Promise.resolve();
  }
  drop(id: string): void {
    this.calls.push(`drop ${id}`);
  }
  fileChanged(file: StoredFile): void {
    this.calls.push(`file ${file.id} ${file.status}`);
  }
}

const flush = () => vi.advanceTimersByTimeAsync(200);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("LiveUpdates", () => {
  it("follows an answer started elsewhere in the chat on screen", async () => {
    const t = new Target();
    new LiveUpdates(t).handle({ kind: "started", conversationId: "c1", generationId: "g", messageId: "m" });
    await flush();
    expect(t.calls).toEqual(["reload c1", "list"]);
  });

  it("ignores the answers it started itself, once its send is answered", async () => {
    const t = new Target();
    let answer = (): void => undefined;
    t.pending = new Promise((resolve) => {
      answer = resolve;
    });
    new LiveUpdates(t).handle({ kind: "started", conversationId: "c1", generationId: "g", messageId: "m" });
    await flush();
    expect(t.calls).toEqual([]); // waits for the send in flight
    t.mine.add("m");
    answer();
    await flush();
    expect(t.calls).toEqual([]);
  });

  it("only refreshes the list for an answer in another chat", async () => {
    const t = new Target();
    new LiveUpdates(t).handle({ kind: "started", conversationId: "c2", generationId: "g", messageId: "m" });
    await flush();
    expect(t.calls).toEqual(["list"]);
  });

  it("re-reads the list once for a burst of changes, and the chat on screen when it changed", async () => {
    const t = new Target();
    const live = new LiveUpdates(t);
    live.handle({ kind: "conversation", action: "created", conversationId: "c2" });
    live.handle({ kind: "conversation", action: "updated", conversationId: "c2" });
    live.handle({ kind: "conversation", action: "updated", conversationId: "c1" });
    await flush();
    expect(t.calls).toEqual(["reload c1", "list"]);
  });

  it("does not re-read a chat whose answer is streaming here", async () => {
    const t = new Target();
    t.streaming.add("c1");
    new LiveUpdates(t).handle({ kind: "conversation", action: "updated", conversationId: "c1" });
    await flush();
    expect(t.calls).toEqual(["list"]);
  });

  it("drops a chat deleted elsewhere and re-reads everything on resync", async () => {
    const t = new Target();
    const live = new LiveUpdates(t);
    live.handle({ kind: "conversation", action: "deleted", conversationId: "c3" });
    live.handle({ kind: "resync" });
    await flush();
    expect(t.calls).toEqual(["drop c3", "reload c1", "list"]);
  });
});
