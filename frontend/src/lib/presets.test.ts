import { describe, expect, it } from "vitest";
import type { ChatSettings } from "../api/types";
import { BUILTIN_PRESETS, PRESETS_KEY, PresetError, PresetStore } from "./presets";

class MemoryStorage {
  data = new Map<string, string>();
  getItem(k: string): string | null {
    return this.data.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.data.set(k, v);
  }
}

const settings: ChatSettings = { model: "fake-model", systemPrompt: "Be brief.", temperature: 0.7, maxTokens: 256 };
let n = 0;
const ids = () => `p${++n}`;

describe("PresetStore", () => {
  it("has the built-ins: Default resets, Precise and Creative set only the temperature", () => {
    const store = new PresetStore(new MemoryStorage(), ids);
    expect(store.list().map((p) => p.name)).toEqual(["Default", "Precise", "Creative"]);
    expect(store.get("builtin:precise")?.settings).toEqual({ temperature: 0.2 });
    expect(store.get("builtin:creative")?.settings).toEqual({ temperature: 1.0 });
    expect(store.get("builtin:default")?.settings).toEqual({ systemPrompt: "", temperature: null, maxTokens: null });
  });

  it("saves, renames and deletes user presets, persisted in localStorage", () => {
    const storage = new MemoryStorage();
    const store = new PresetStore(storage, ids);
    let changes = 0;
    store.subscribe(() => changes++);
    const before = store.list();
    const p = store.save("  Mine  ", settings);
    expect(p).toMatchObject({ name: "Mine", builtin: false, settings });
    expect(store.list()).not.toBe(before); // a new snapshot for useSyncExternalStore
    expect(store.list()).toBe(store.list());

    // Saving under the same name overwrites that preset.
    store.save("Mine", { ...settings, temperature: 0.3 });
    expect(store.list().filter((x) => !x.builtin)).toHaveLength(1);
    expect(store.get(p.id)?.settings.temperature).toBe(0.3);

    store.save("Other", settings);
    expect(() => {
      store.rename(p.id, "Other");
    }).toThrow(PresetError);
    store.rename(p.id, "Renamed");
    const again = new PresetStore(storage, ids); // a reload
    expect(again.list().slice(BUILTIN_PRESETS.length).map((x) => x.name)).toEqual(["Renamed", "Other"]);
    expect(again.get(p.id)?.settings).toEqual({ ...settings, temperature: 0.3 });

    again.remove(p.id);
    expect(new PresetStore(storage, ids).get(p.id)).toBeUndefined();
    expect(changes).toBe(4);
  });

  it("refuses empty names and changes to built-ins", () => {
    const store = new PresetStore(new MemoryStorage(), ids);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof PresetError ? e.code : "other";
      }
      return "none";
    };
    expect(code(() => store.save("   ", settings))).toBe("empty");
    expect(code(() => { store.rename("builtin:default", "X"); })).toBe("builtin");
    expect(code(() => { store.remove("builtin:precise"); })).toBe("builtin");
    expect(code(() => { store.remove("nope"); })).toBe("missing");
  });

  it("reads what it can of a damaged or hand-edited store", () => {
    const storage = new MemoryStorage();
    storage.setItem(PRESETS_KEY, JSON.stringify([
      { id: "a", name: "Good", settings: { model: "m", temperature: 5, maxTokens: -1, systemPrompt: 3 } },
      { id: "builtin:default", name: "Spoof", settings: {} },
      { name: "no id" },
      "junk",
    ]));
    const store = new PresetStore(storage, ids);
    expect(store.list().slice(BUILTIN_PRESETS.length)).toEqual([{ id: "a", name: "Good", builtin: false, settings: { model: "m" } }]);
    storage.setItem(PRESETS_KEY, "{not json");
    expect(new PresetStore(storage, ids).list()).toEqual(BUILTIN_PRESETS);
    expect(new PresetStore(null, ids).list()).toEqual(BUILTIN_PRESETS);
  });
});
