import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ChatSocket, socketUrl, type SocketEvent, type SocketLike } from "./socket";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(): void {
    this.readyState = 3;
  }
  accept(): void {
    this.readyState = 1;
    this.onopen?.call(this, new Event("open"));
  }
  drop(): void {
    this.readyState = 3;
    this.onclose?.call(this, new Event("close") as CloseEvent);
  }
  push(ev: Record<string, unknown>): void {
    this.onmessage?.call(this, new MessageEvent("message", { data: JSON.stringify(ev) }));
  }
}

let sockets: FakeSocket[];
const opener = () => {
  const s = new FakeSocket();
  sockets.push(s);
  return s;
};

function at(i: number): FakeSocket {
  const s = sockets[i];
  if (!s) throw new Error(`no socket #${i} was opened`);
  return s;
}

beforeEach(() => {
  sockets = [];
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("ChatSocket", () => {
  it("builds the socket URL from the page's origin", () => {
    expect(socketUrl({ protocol: "http:", host: "127.0.0.1:8000" })).toBe("ws://127.0.0.1:8000/api/ws");
    expect(socketUrl({ protocol: "https:", host: "chat.example" })).toBe("wss://chat.example/api/ws");
  });

  it("subscribes once open and delivers each event once, in order", () => {
    const socket = new ChatSocket(opener);
    const got: SocketEvent[] = [];
    socket.follow("g1", (ev) => got.push(ev));
    expect(sockets).toHaveLength(1);
    at(0).accept();
    expect(at(0).sent).toEqual([{ type: "subscribe", generation_id: "g1", after: 0 }]);
    at(0).push({ type: "delta", seq: 1, generation_id: "g1", content: "a" });
    at(0).push({ type: "delta", seq: 1, generation_id: "g1", content: "a" });
    at(0).push({ type: "delta", seq: 2, generation_id: "g2", content: "not ours" });
    at(0).push({ type: "delta", seq: 2, generation_id: "g1", content: "b" });
    expect(got.map((e) => e.content)).toEqual(["a", "b"]);
  });

  it("reconnects, resumes after the last event seen, watches again and asks for a resync", () => {
    const socket = new ChatSocket(opener, () => 100);
    const got: SocketEvent[] = [];
    const heard: SocketEvent[] = [];
    socket.follow("g1", (ev) => got.push(ev));
    socket.watch((ev) => heard.push(ev));
    at(0).accept();
    expect(at(0).sent).toContainEqual({ type: "watch" });
    at(0).push({ type: "delta", seq: 1, generation_id: "g1", content: "a" });
    at(0).push({ type: "delta", seq: 2, generation_id: "g1", content: "b" });
    expect(heard).toEqual([]); // the first connection is not a resync
    at(0).drop();
    expect(sockets).toHaveLength(1);
    vi.advanceTimersByTime(100);
    expect(sockets).toHaveLength(2);
    at(1).accept();
    expect(at(1).sent).toEqual([
      { type: "watch" },
      { type: "subscribe", generation_id: "g1", after: 2 },
    ]);
    expect(heard).toEqual([{ type: "resync" }]);
    at(1).push({ type: "delta", seq: 2, generation_id: "g1", content: "b" }); // replayed
    at(1).push({ type: "delta", seq: 3, generation_id: "g1", content: "c" });
    expect(got.map((e) => e.content)).toEqual(["a", "b", "c"]);
  });

  it("passes user events to watchers and errors without seq to the follower", () => {
    const socket = new ChatSocket(opener);
    const heard: SocketEvent[] = [];
    const got: SocketEvent[] = [];
    socket.watch((ev) => heard.push(ev));
    socket.follow("g9", (ev) => got.push(ev));
    at(0).accept();
    at(0).push({ type: "generation", action: "started", generation_id: "g1", conversation_id: "c1" });
    at(0).push({ type: "conversation", action: "deleted", conversation_id: "c1" });
    at(0).push({ type: "file", file: { id: "file_a", status: "ready" } });
    at(0).push({ type: "error", generation_id: "g9", error: { message: "not found" } });
    expect(heard.map((e) => e.type)).toEqual(["generation", "conversation", "file"]);
    expect(got).toEqual([{ type: "error", generation_id: "g9", error: { message: "not found" } }]);
  });

  it("gives up on WebSockets that never open, so the caller can use SSE", () => {
    const socket = new ChatSocket(opener, () => 10);
    const got: SocketEvent[] = [];
    socket.follow("g1", (ev) => got.push(ev));
    at(0).drop();
    vi.advanceTimersByTime(10);
    at(1).drop();
    vi.advanceTimersByTime(10);
    at(2).drop();
    vi.advanceTimersByTime(1000);
    expect(sockets).toHaveLength(3);
    expect(socket.usable).toBe(false);
    expect(got).toEqual([{ type: "socket-unusable", generation_id: "g1" }]);
  });

  it("unsubscribes and stops", () => {
    const socket = new ChatSocket(opener);
    const leave = socket.follow("g1", () => undefined);
    at(0).accept();
    expect(socket.stopGeneration("g1")).toBe(true);
    leave();
    expect(at(0).sent.slice(1)).toEqual([
      { type: "stop", generation_id: "g1" },
      { type: "unsubscribe", generation_id: "g1" },
    ]);
  });
});
