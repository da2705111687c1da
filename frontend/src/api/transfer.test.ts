import { describe, expect, it } from "vitest";
import type { Conversation, Message } from "./types";
import { exportJson, exportMarkdown, FORMAT, parseImport } from "./transfer";

const conv: Conversation = {
  id: "c1",
  title: "Trip",
  pinned: true,
  createdAt: Date.UTC(2025, 0, 2, 3, 4, 5),
  updatedAt: Date.UTC(2025, 0, 2, 3, 4, 6),
  settings: { model: "fake-model", systemPrompt: "Be brief.", temperature: 0.2, maxTokens: null },
  leafId: "a2",
};
const at = (s: number) => Date.UTC(2025, 0, 2, 3, 5, s);
const messages: Message[] = [
  { id: "u1", conversationId: "c1", parentId: null, role: "user", content: "Hi", status: "done", createdAt: at(1) },
  {
    id: "a1", conversationId: "c1", parentId: "u1", role: "assistant", content: "Hello", status: "done", createdAt: at(2),
    model: "fake-model", reasoning: "greet", usage: { promptTokens: 9, completionTokens: 2, totalTokens: 11 },
  },
  { id: "a2", conversationId: "c1", parentId: "u1", role: "assistant", content: "Hey", status: "stopped", createdAt: at(3) },
];
let n = 0;
const ids = () => `n${++n}`;
const defaults = { model: "default-model", systemPrompt: "", temperature: null, maxTokens: null };

describe("export in local mode: the server's format", () => {
  it("writes the whole tree with the conversation's settings", () => {
    expect(exportJson(conv, messages, at(9))).toEqual({
      format: FORMAT,
      version: 1,
      exported_at: "2025-01-02T03:05:09.000Z",
      conversation: {
        title: "Trip", model: "fake-model", system_prompt: "Be brief.", params: { temperature: 0.2 }, pinned: true,
        created_at: "2025-01-02T03:04:05.000Z", active_leaf_id: "a2",
      },
      messages: [
        { id: "u1", parent_id: null, role: "user", content: "Hi", reasoning: null, status: "done", model: null, usage: null, context: null, error: null, created_at: "2025-01-02T03:05:01.000Z" },
        {
          id: "a1", parent_id: "u1", role: "assistant", content: "Hello", reasoning: "greet", status: "done", model: "fake-model",
          usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 }, context: null, error: null, created_at: "2025-01-02T03:05:02.000Z",
        },
        { id: "a2", parent_id: "u1", role: "assistant", content: "Hey", reasoning: null, status: "stopped", model: null, usage: null, context: null, error: null, created_at: "2025-01-02T03:05:03.000Z" },
      ],
    });
  });

  it("writes Markdown of the branch", () => {
    const md = exportMarkdown(conv, [messages[0] as Message, messages[2] as Message]);
    expect(md).toBe("# Trip\n\n*Model: fake-model*\n\n**System prompt:**\n\nBe brief.\n\n## User\n\nHi\n\n## Assistant\n\nHey\n");
  });

  it("round-trips through import with new ids, the tree and the branch kept", () => {
    const data = JSON.parse(JSON.stringify(exportJson(conv, messages))) as unknown;
    const { conversation, messages: got } = parseImport(data, defaults, ids, at(30));
    expect(conversation).toMatchObject({ title: "Trip", pinned: true, settings: conv.settings });
    expect(got.map((m) => [m.role, m.content, m.status])).toEqual([["user", "Hi", "done"], ["assistant", "Hello", "done"], ["assistant", "Hey", "stopped"]]);
    const [u, a1, a2] = got as [Message, Message, Message];
    expect(new Set([conversation.id, u.id, a1.id, a2.id]).size).toBe(4);
    expect(["u1", "a1", "a2", "c1"]).not.toContain(u.id);
    expect(a1.parentId).toBe(u.id);
    expect(a2.parentId).toBe(u.id);
    expect(conversation.leafId).toBe(a2.id);
    expect(a1.usage).toEqual(messages[1]?.usage);
    expect(got.every((m) => m.conversationId === conversation.id)).toBe(true);
  });

  it("takes a plain message list as one branch, and says what is wrong with a bad file", () => {
    const { conversation, messages: got } = parseImport(
      { title: "Plain", messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }] }, defaults, ids,
    );
    expect(conversation.settings.model).toBe("default-model");
    expect(got[1]?.parentId).toBe(got[0]?.id);
    expect(conversation.leafId).toBe(got[1]?.id);
    expect(() => parseImport([], defaults, ids)).toThrow("Cannot import: expected a JSON object");
    expect(() => parseImport({ messages: "x" }, defaults, ids)).toThrow(/messages/);
    expect(() => parseImport({ messages: [{ role: "robot", content: "x" }] }, defaults, ids)).toThrow(/messages\[0\]/);
  });
});
