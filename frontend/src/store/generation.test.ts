import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Message } from "../api/types";
import { threadOf } from "../lib/tree";
import { COMPARE_KEY, refOf } from "./compare";
import { ConversationsSlice } from "./conversations";
import { FakeBackend, conversation, core, message, tick } from "./fakes";
import { GenerationSlice, type GenerationHost } from "./generation";

function setup(owns: boolean) {
  const backend = new FakeBackend(owns);
  const store = core(backend);
  const conversations = new ConversationsSlice(store);
  const host: GenerationHost = {
    getState: () => store.getState(),
    set: (p) => {
      store.set(p);
    },
    backend: () => store.backend(),
    write: (run) => store.write(run),
    notify: (e) => {
      store.notify(e);
    },
    putMessages: (id, list) => {
      store.putMessages(id, list);
    },
    putConversation: (c, add) => {
      store.putConversation(c, add);
    },
    applyBranch: (id, branch) => conversations.applyBranch(id, branch),
  };
  return { backend, store, gen: new GenerationSlice(host) };
}

const shown = (store: ReturnType<typeof core>, id: string) => {
  const s = store.getState();
  return threadOf(s.messages.get(id) ?? new Map(), s.conversations.find((c) => c.id === id)?.leafId ?? null);
};

describe("GenerationSlice", () => {
  it.each([false, true])("a first message makes a chat, streams, and ends (backend owns: %s)", async (owns) => {
    const { backend, store, gen } = setup(owns);
    const sending = gen.send("  Hello there  ");
    await tick();
    const s = store.getState();
    expect(s.activeId).not.toBeNull();
    const cid = s.activeId ?? "";
    expect(s.generation?.conversationId).toBe(cid);
    const thread = shown(store, cid);
    expect(thread.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(thread[0]?.content).toBe("Hello there");
    expect(s.generation?.answers.map((a) => a.assistantId)).toEqual([thread[1]?.id]);
    // A second send while one answer runs does nothing.
    await gen.send("again");
    expect(backend.calls.filter((c) => c.startsWith("send"))).toHaveLength(1);

    backend.answer("Hi!");
    await sending;
    expect(store.getState().generation).toBeNull();
    const final = shown(store, cid)[1];
    // Local: the store's copy is the truth and is saved; server: the stored branch is re-read.
    expect(final?.content).toBe(owns ? "Hi! (stored)" : "Hi!");
    expect(final?.status).toBe("done");
    expect(backend.calls.some((c) => c.startsWith(`ended ${final?.id ?? ""} done Hi!`))).toBe(true);
    const title = store.getState().conversations.find((c) => c.id === cid)?.title;
    expect(title).toBe("Hello there");
    expect(backend.calls.some((c) => c.startsWith("started"))).toBe(true);
    expect(store.getState().pendingWrites).toBe(0);
  });

  it("regenerate answers the same user message again, as a sibling", async () => {
    const { backend, store, gen } = setup(false);
    const c = conversation("c1", { leafId: "a1" });
    backend.conversations.set("c1", c);
    store.set({ conversations: [c], activeId: "c1" });
    store.putMessages("c1", [message("u1", null, "user"), message("a1", "u1", "assistant")]);
    const run = gen.regenerate("a1");
    await tick();
    expect(backend.pending[0]?.request).toMatchObject({ parentId: "u1", content: null, regenerateOf: "a1" });
    backend.answer("again");
    await run;
    const thread = shown(store, "c1");
    expect(thread.map((m) => m.id)).toEqual(["u1", thread[1]?.id]);
    expect(thread[1]?.id).not.toBe("a1");
    expect(thread[1]?.content).toBe("again");
    expect(store.getState().messages.get("c1")?.has("a1")).toBe(true); // the old answer stays
  });

  it("edit and resend branches at the user message's parent", async () => {
    const { backend, store, gen } = setup(false);
    const c = conversation("c1", { leafId: "a2" });
    backend.conversations.set("c1", c);
    store.set({ conversations: [c], activeId: "c1" });
    store.putMessages("c1", [
      message("u1", null, "user"),
      message("a1", "u1", "assistant"),
      message("u2", "a1", "user"),
      message("a2", "u2", "assistant"),
    ]);
    const run = gen.editAndResend("u2", "edited");
    await tick();
    expect(backend.pending[0]?.request).toMatchObject({ parentId: "a1", content: "edited", editOf: "u2" });
    expect(backend.pending[0]?.request.history.map((m) => m.id)).toEqual(["u1", "a1"]);
    backend.answer("ok");
    await run;
    expect(shown(store, "c1").map((m) => m.content)).toEqual(["u1", "a1", "edited", "ok"]);
  });

  it("stop ends the answer as stopped, keeping the partial text", async () => {
    const { backend, store, gen } = setup(false);
    const run = gen.send("hi");
    await tick();
    backend.pending[0]?.sink.content("partial");
    gen.stop();
    await run;
    const cid = store.getState().activeId ?? "";
    expect(shown(store, cid)[1]).toMatchObject({ content: "partial", status: "stopped" });
  });

  it("a refused send is a notice, and nothing runs", async () => {
    const { backend, store, gen } = setup(true);
    backend.send = () => Promise.reject(new Error("model_cannot_see_images"));
    const c = conversation("c1");
    store.set({ conversations: [c], activeId: "c1", messages: new Map([["c1", new Map()]]) });
    await gen.send("hi");
    expect(store.getState().notice).toBe("model_cannot_see_images");
    expect(store.getState().generation).toBeNull();
    await gen.settled();
  });

  it("remembers the answers it started (live updates skip them)", async () => {
    const { backend, store, gen } = setup(true);
    const run = gen.send("hi");
    await tick();
    const id = store.getState().generation?.answers[0]?.assistantId ?? "";
    expect(gen.startedHere(id)).toBe(true);
    expect(gen.startedHere("other")).toBe(false);
    expect(gen.streamingIn(store.getState().activeId ?? "")).toBe(true);
    backend.answer("x");
    await run;
    expect(gen.streamingIn(store.getState().activeId ?? "")).toBe(false);
  });
});

describe("side by side", () => {
  let saved: Map<string, string>;
  beforeEach(() => {
    saved = new Map();
    vi.stubGlobal("localStorage", {
      getItem: (k: string) => saved.get(k) ?? null,
      setItem: (k: string, v: string) => saved.set(k, v),
      removeItem: (k: string) => saved.delete(k),
    });
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it("one user message, one streaming answer per model in columns, each ending on its own", async () => {
    const { backend, store, gen } = setup(true);
    const run = gen.send("compare", ["m1", "m2"]);
    await tick();
    expect(backend.calls).toContain("send compare m1+m2");
    const s = store.getState();
    const cid = s.activeId ?? "";
    const ids = s.generation?.answers.map((a) => a.assistantId) ?? [];
    expect(ids).toHaveLength(2);
    const cmp = s.comparisons.get(cid);
    expect(cmp?.answers.map((m) => [m.id, m.model])).toEqual([
      [ids[0], "m1"],
      [ids[1], "m2"],
    ]);
    // Both are siblings under the one user message; the first is the leaf meanwhile.
    expect(cmp?.answers.every((m) => m.parentId === cmp.userMessageId)).toBe(true);
    expect(store.getState().conversations.find((c) => c.id === cid)?.leafId).toBe(ids[0]);
    expect(JSON.parse(saved.get(COMPARE_KEY) ?? "[]")).toEqual([
      { conversationId: cid, userMessageId: cmp?.userMessageId, answers: cmp?.answers.map(refOf) },
    ]);

    backend.answer("first");
    await tick();
    expect(store.getState().generation).not.toBeNull(); // the other is still being written
    expect(store.getState().comparisons.get(cid)?.answers[0]).toMatchObject({ content: "first", status: "done" });
    backend.answer("second");
    await run;
    expect(store.getState().generation).toBeNull();
    const done = store.getState().comparisons.get(cid)?.answers ?? [];
    expect(done.map((m) => [m.content, m.status])).toEqual([
      ["first", "done"],
      ["second", "done"],
    ]);
    gen.closeComparison(cid);
    expect(store.getState().comparisons.has(cid)).toBe(false);
    expect(saved.get(COMPARE_KEY)).toBe("[]");
  });

  it("after a reload mid-answer the columns come back and every answer is followed", async () => {
    const first = setup(true);
    void first.gen.send("compare", ["m1", "m2"]);
    await tick();
    const cid = first.store.getState().activeId ?? "";
    const [a1, a2] = first.store.getState().comparisons.get(cid)?.answers ?? [];
    // A new page: same backend (the server), same localStorage, only the branch loaded.
    const again = setup(true);
    again.backend.messages = first.backend.messages;
    again.backend.conversations = first.backend.conversations;
    const c = first.backend.conversations.get(cid);
    if (!c) throw new Error("no conversation");
    again.store.set({ conversations: [c], activeId: cid });
    const user = first.backend.messages.get(a1?.parentId ?? "");
    again.store.putMessages(cid, [user, a1].filter((m): m is Message => m !== undefined));
    const resumed = again.gen.resumeIfStreaming(cid);
    await tick();
    expect(again.backend.calls).toContain(`loadAnswer ${a2?.id ?? ""}`);
    expect(again.backend.calls.filter((x) => x.startsWith("resume"))).toEqual([`resume ${a1?.id ?? ""}`, `resume ${a2?.id ?? ""}`]);
    expect(again.store.getState().comparisons.get(cid)?.answers.map((m) => m.id)).toEqual([a1?.id, a2?.id]);
    expect(again.store.getState().generation?.answers).toHaveLength(2);
    again.backend.answer("one");
    again.backend.answer("two");
    await resumed;
    expect(again.store.getState().generation).toBeNull();
    expect(again.store.getState().comparisons.get(cid)?.answers.map((m) => m.content)).toEqual(["one", "two"]);
  });

  it("the next message closes the comparison it continues from", async () => {
    const { backend, store, gen } = setup(false);
    const run = gen.send("compare", ["m1", "m2"]);
    await tick();
    backend.answer("a");
    backend.answer("b");
    await run;
    const cid = store.getState().activeId ?? "";
    expect(store.getState().comparisons.has(cid)).toBe(true);
    const next = gen.send("go on");
    await tick();
    expect(store.getState().comparisons.has(cid)).toBe(false);
    backend.answer("c");
    await next;
  });
});
