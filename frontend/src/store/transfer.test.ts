import { describe, expect, it } from "vitest";
import { FakeBackend, core } from "./fakes";
import { TransferSlice } from "./transfer";

describe("TransferSlice", () => {
  it("imports a file as a new open conversation with the draft's model as fallback", async () => {
    const store = core(new FakeBackend());
    await new TransferSlice(store).importData({ messages: [] });
    const s = store.getState();
    expect(s.activeId).toBe("imported");
    expect(s.conversations[0]?.settings.model).toBe("m1");
    expect([...(s.messages.get("imported")?.keys() ?? [])]).toEqual(["i1"]);
  });

  it("exports the open conversation, or nothing when none is open", async () => {
    const store = core(new FakeBackend());
    const slice = new TransferSlice(store);
    expect(await slice.exportActive("json")).toBeNull();
    store.set({ activeId: "c9" });
    expect((await slice.exportActive("json"))?.filename).toBe("c9.json");
  });

  it("an edited summary replaces the loaded one; a failure is a notice", async () => {
    const backend = new FakeBackend();
    const store = core(backend);
    const slice = new TransferSlice(store);
    expect(await slice.editSummary("c1", "s1", "short")).toBe(true);
    expect(store.getState().messages.get("c1")?.get("s1")?.content).toBe("short");
    backend.editSummary = () => Promise.reject(new Error("nope"));
    expect(await slice.editSummary("c1", "s1", "x")).toBe(false);
    expect(store.getState().notice).toBe("nope");
  });
});
