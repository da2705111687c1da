import { describe, expect, it } from "vitest";
import type { Message } from "../api/types";
import { deepestLeaf, siblingsOf, threadOf } from "./tree";

let t = 0;
const msg = (id: string, parentId: string | null, role: Message["role"] = "user"): Message => ({
  id,
  parentId,
  role,
  conversationId: "c",
  content: id,
  createdAt: ++t,
});

function tree(...ms: Message[]) {
  return new Map(ms.map((m) => [m.id, m]));
}

describe("message tree", () => {
  // u1 → a1 ; u1 → a1b (regenerated) → u2 → a2 ; u1' (edited root)
  const map = tree(
    msg("u1", null),
    msg("a1", "u1", "assistant"),
    msg("a1b", "u1", "assistant"),
    msg("u2", "a1b"),
    msg("a2", "u2", "assistant"),
    msg("u1x", null),
  );

  it("walks the branch to a leaf", () => {
    expect(threadOf(map, "a2").map((m) => m.id)).toEqual(["u1", "a1b", "u2", "a2"]);
    expect(threadOf(map, "a1").map((m) => m.id)).toEqual(["u1", "a1"]);
  });

  it("defaults to the newest message", () => {
    expect(threadOf(map, null).map((m) => m.id)).toEqual(["u1x"]);
  });

  it("lists siblings and follows the newest child down", () => {
    expect(siblingsOf(map, map.get("a1") as Message).map((m) => m.id)).toEqual(["a1", "a1b"]);
    expect(siblingsOf(map, map.get("u1") as Message).map((m) => m.id)).toEqual(["u1", "u1x"]);
    expect(deepestLeaf(map, "u1")).toBe("a2");
    expect(deepestLeaf(map, "a1")).toBe("a1");
  });

  it("survives a cycle", () => {
    const bad = tree(msg("x", "y"), msg("y", "x"));
    expect(threadOf(bad, "x").length).toBe(2);
  });
});
