/**
 * Export and import in the browser (local mode), in the server's own format
 * (src/chatgate/chat/transfer.py): a file exported here imports on the server and vice versa.
 *
 * JSON: `{format: "chatgate.conversation", version: 1, exported_at, conversation: {title, model,
 * system_prompt, params, pinned, created_at, active_leaf_id}, messages: [{id, parent_id, role,
 * content, reasoning, status, model, usage, context, error, created_at}]}` — the whole tree.
 * Markdown: the branch on screen. Import also takes `{title, messages: [{role, content}]}`.
 */

import { parseUsage } from "./openai";
import type { ChatSettings, Conversation, Message, MessageStatus, Role, Usage } from "./types";

export const FORMAT = "chatgate.conversation";
export const MAX_IMPORT_MESSAGES = 100_000;

type Json = Record<string, unknown>;

const iso = (ms: number): string => new Date(ms).toISOString();

function usageJson(u: Usage): Json {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.totalTokens,
    ...(u.reasoningTokens ? { completion_tokens_details: { reasoning_tokens: u.reasoningTokens } } : {}),
  };
}

/** Sampling parameters as the server keeps them (`params`): only those that are set. */
export function paramsJson(s: ChatSettings): Json {
  const params: Json = {};
  if (s.temperature !== null) params.temperature = s.temperature;
  if (s.maxTokens !== null) params.max_tokens = s.maxTokens;
  return params;
}

export function exportJson(conv: Conversation, messages: readonly Message[], now = Date.now()): Json {
  return {
    format: FORMAT,
    version: 1,
    exported_at: iso(now),
    conversation: {
      title: conv.title,
      model: conv.settings.model,
      system_prompt: conv.settings.systemPrompt || null,
      params: paramsJson(conv.settings),
      pinned: conv.pinned,
      created_at: iso(conv.createdAt),
      active_leaf_id: conv.leafId,
    },
    messages: [...messages]
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((m) => ({
        id: m.id,
        parent_id: m.parentId,
        role: m.role,
        content: m.content,
        reasoning: m.reasoning ?? null,
        status: m.status === "streaming" ? "stopped" : (m.status ?? "done"),
        model: m.model ?? null,
        usage: m.usage ? usageJson(m.usage) : null,
        context: null,
        error: m.error ?? null,
        created_at: iso(m.createdAt),
      })),
  };
}

/** The branch on screen (with its summaries), as the server writes it. */
export function exportMarkdown(conv: Conversation, thread: readonly Message[]): string {
  const out = [`# ${conv.title || "Conversation"}`, "", `*Model: ${conv.settings.model}*`, ""];
  if (conv.settings.systemPrompt) out.push("**System prompt:**", "", conv.settings.systemPrompt, "");
  for (const m of thread) {
    if (m.role === "summary") {
      const quoted = m.content.split("\n").map((line) => `> ${line}`);
      out.push("> **Summary of the earlier turns:**", ">", ...quoted, "");
      continue;
    }
    out.push(`## ${m.role.charAt(0).toUpperCase()}${m.role.slice(1)}`, "");
    if (m.reasoning) out.push("<details><summary>Reasoning</summary>", "", m.reasoning, "</details>", "");
    out.push(m.content, "");
  }
  return out.join("\n");
}

export function exportFilename(id: string, format: "json" | "markdown"): string {
  return `conversation-${id}.${format === "json" ? "json" : "md"}`;
}

const ROLES: readonly Role[] = ["system", "user", "assistant", "summary"];
const STATUSES: readonly MessageStatus[] = ["done", "streaming", "stopped", "error"];
const obj = (v: unknown): Json | null => (v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : null);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

function time(v: unknown, fallback: number): number {
  if (typeof v !== "string") return fallback;
  const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v}Z`);
  return Number.isNaN(t) ? fallback : t;
}

function bad(message: string): Error {
  return new Error(`Cannot import: ${message}`);
}

/**
 * A JSON export as a new conversation with new ids (a plain message list becomes one branch).
 * Throws an Error saying what is wrong, as the server answers 400.
 */
export function parseImport(
  data: unknown,
  defaults: ChatSettings,
  newId: () => string,
  now = Date.now(),
): { conversation: Conversation; messages: Message[] } {
  const root = obj(data);
  if (!root) throw bad("expected a JSON object");
  const meta = root.format === FORMAT ? obj(root.conversation) : root;
  if (!meta) throw bad("`conversation` must be an object");
  const list = root.messages;
  if (!Array.isArray(list) || list.length > MAX_IMPORT_MESSAGES) {
    throw bad(`\`messages\` must be an array of at most ${MAX_IMPORT_MESSAGES}`);
  }
  const conversationId = newId();
  const linear = !list.some((m) => obj(m) !== null && "id" in (m as Json));
  const fresh = list.map(() => newId());
  const ids = new Map<string, string>();
  list.forEach((m, i) => {
    const o = obj(m);
    if (!o) throw bad(`messages[${i}] must be an object`);
    const key = String(o.id);
    if (!linear && !ids.has(key)) ids.set(key, fresh[i] ?? newId());
  });
  const messages: Message[] = [];
  let previous: string | null = null;
  list.forEach((m, i) => {
    const o = m as Json;
    const role = o.role as Role;
    const content = o.content;
    if (!ROLES.includes(role) || typeof content !== "string") {
      throw bad(`messages[${i}] needs a known role and text content`);
    }
    const id = fresh[i] ?? newId();
    let parentId = linear ? previous : (ids.get(String(o.parent_id)) ?? null);
    if (parentId === id) parentId = null;
    const status = STATUSES.includes(o.status as MessageStatus) ? (o.status as MessageStatus) : "done";
    const msg: Message = {
      id,
      conversationId,
      parentId,
      role,
      content,
      status: status === "streaming" ? "stopped" : status,
      // Keep the file's order even when its times are missing or equal.
      createdAt: time(o.created_at, now) + i / 1000,
    };
    const reasoning = str(o.reasoning);
    if (reasoning) msg.reasoning = reasoning;
    const model = str(o.model);
    if (model) msg.model = model;
    const error = str(o.error);
    if (error) msg.error = error;
    const usage = parseUsage(o.usage);
    if (usage) msg.usage = usage;
    messages.push(msg);
    previous = id;
  });
  const params = obj(meta.params) ?? {};
  const title = str(meta.title) ?? "";
  let leafId = linear ? previous : (ids.get(String(meta.active_leaf_id)) ?? previous);
  // The branch on screen ends at a turn, never at a summary checkpoint.
  if (leafId !== null && messages.find((m) => m.id === leafId)?.role === "summary") {
    leafId = [...messages].reverse().find((m) => m.role !== "summary")?.id ?? null;
  }
  const conversation: Conversation = {
    id: conversationId,
    title: title.slice(0, 300),
    pinned: Boolean(meta.pinned),
    createdAt: time(meta.created_at, now),
    updatedAt: now,
    settings: {
      model: str(meta.model) ?? defaults.model,
      systemPrompt: str(meta.system_prompt) ?? "",
      temperature: num(params.temperature),
      maxTokens: num(params.max_tokens),
    },
    leafId,
  };
  return { conversation, messages };
}
