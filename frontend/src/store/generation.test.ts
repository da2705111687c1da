import { describe, expect, it } from "vitest";
import { threadOf } from "../lib/tree";
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
    expect(s.generation?.assistantId).toBe(thread[1]?.id);
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
    const id = store.getState().generation?.assistantId ?? "";
    expect(gen.startedHere(id)).toBe(true);
    expect(gen.startedHere("other")).toBe(false);
    expect(gen.streamingIn(store.getState().activeId ?? "")).toBe(true);
    backend.answer("x");
    await run;
    expect(gen.streamingIn(store.getState().activeId ?? "")).toBe(false);
  });
});
