import { describe, expect, it } from "vitest";
import { ConversationsSlice } from "./conversations";
import { FakeBackend, conversation, core, message } from "./fakes";

function setup(owns = false) {
  const backend = new FakeBackend(owns);
  const store = core(backend);
  const loaded: string[] = [];
  const slice = new ConversationsSlice(store, (id) => loaded.push(id));
  const c1 = conversation("c1", { leafId: "a1", updatedAt: 5 });
  const c2 = conversation("c2", { updatedAt: 9 });
  for (const c of [c1, c2]) backend.conversations.set(c.id, c);
  store.set({ conversations: [c2, c1] });
  return { backend, store, slice, loaded };
}

describe("ConversationsSlice", () => {
  it("opens a conversation once, then follows what is streaming", async () => {
    const { backend, store, slice, loaded } = setup();
    backend.messages.set("u1", message("u1", null, "user"));
    backend.messages.set("a1", message("a1", "u1", "assistant"));
    await slice.open("c1", "u1");
    expect(store.getState()).toMatchObject({ activeId: "c1", focusMessageId: "u1" });
    expect(slice.thread().map((m) => m.id)).toEqual(["u1", "a1"]);
    expect(loaded).toEqual(["c1"]);
    await slice.open("c1");
    expect(loaded).toEqual(["c1"]); // already loaded: not read again
  });

  it("updates optimistically and rolls back on failure", async () => {
    const { backend, store, slice } = setup();
    await slice.togglePin("c1");
    expect(store.getState().conversations[0]).toMatchObject({ id: "c1", pinned: true }); // pinned first
    backend.updateConversation = () => Promise.reject(new Error("offline"));
    await slice.rename("c1", "  New name ");
    expect(store.getState().conversations.find((c) => c.id === "c1")?.title).toBe("");
    expect(store.getState().notice).toBe("offline");
  });

  it("settings patches send the conversation's complete settings", async () => {
    const { backend, store, slice } = setup();
    store.set({ activeId: "c1" });
    slice.updateSettings({ temperature: 0.3 });
    await Promise.resolve();
    expect(store.getState().draft.temperature).toBe(0.3);
    expect(backend.calls.at(-1)).toContain('"model":"m1"');
    expect(slice.settings().temperature).toBe(0.3);
  });

  it("remove forgets the conversation here and deletes it there", async () => {
    const { backend, store, slice } = setup();
    store.set({ activeId: "c1" });
    await slice.remove("c1");
    expect(store.getState().activeId).toBeNull();
    expect(store.getState().conversations.map((c) => c.id)).toEqual(["c2"]);
    expect(backend.calls).toContain("delete c1");
  });

  it("keeps only the newest search's hits", async () => {
    const { store, slice } = setup();
    const first = slice.search("old");
    const second = slice.search("new");
    await Promise.all([first, second]);
    expect(store.getState().searchHits?.map((h) => h.title)).toEqual(["new"]);
    await slice.search("  ");
    expect(store.getState().searchHits).toBeNull();
  });

  it.each([false, true])("switches branch through the backend (backend owns the tree: %s)", async (owns) => {
    const { backend, store, slice, loaded } = setup(owns);
    const tree = [
      message("u1", null, "user"),
      message("a1", "u1", "assistant", { createdAt: 1 }),
      message("a2", "u1", "assistant", { createdAt: 2 }),
      message("u3", "a2", "user", { createdAt: 3 }),
    ];
    for (const m of tree) backend.messages.set(m.id, m);
    store.putMessages("c1", tree);
    await slice.switchBranch("c1", "a2");
    const leaf = store.getState().conversations.find((c) => c.id === "c1")?.leafId;
    // Local: the newest end under the sibling; server: the sibling, and the branch re-read.
    expect(leaf).toBe("u3");
    expect(backend.calls.at(-1)).toBe(`update {"leafId":"${owns ? "a2" : "u3"}"}`);
    expect(loaded).toEqual(owns ? ["c1"] : []);
  });

  it("does not switch branch while an answer is written there", async () => {
    const { backend, store, slice } = setup();
    store.set({ generation: { conversationId: "c1", answers: [], stop: () => undefined } });
    await slice.switchBranch("c1", "a2");
    expect(backend.calls).toEqual([]);
  });
});
