/** The chat state's shape and the pure helpers around it (the store itself is chat.ts). */

import type { Capability } from "../api";
import type { ModelInfo } from "../api/openai";
import type { StoredFile } from "../api/files";
import type { ChatSettings, Conversation, Message, SearchHit } from "../api/types";
import type { StreamBuffer } from "../lib/streamBuffer";
import type { MessageMap } from "../lib/tree";

/** One answer being written, and where its text accumulates. */
export interface LiveAnswer {
  assistantId: string;
  buffer: StreamBuffer;
}

/** What is being written now: one answer, or (side by side) one per model. */
export interface Generation {
  conversationId: string;
  answers: LiveAnswer[];
  stop(): void;
}

/** Side by side: the answers of several models to one user message, until one is kept. */
export interface Comparison {
  conversationId: string;
  userMessageId: string;
  /** In order; held here because the server sends only the branch on screen. */
  answers: Message[];
}

export interface ChatState {
  status: "starting" | "ready" | "login" | "failed";
  mode: Capability | null;
  startError: string | null;
  conversations: Conversation[];
  activeId: string | null;
  /** Loaded conversations' message trees. */
  messages: ReadonlyMap<string, MessageMap>;
  generation: Generation | null;
  /** Files can be attached (server mode). */
  acceptsFiles: boolean;
  /** Uploaded files this page knows of, kept current by live events (indexing status). */
  files: ReadonlyMap<string, StoredFile>;
  /** Open side-by-side comparisons, by conversation. */
  comparisons: ReadonlyMap<string, Comparison>;
  models: ModelInfo[];
  modelsError: string | null;
  /** Settings for the next new chat (and the chat shown before it has a first message). */
  draft: ChatSettings;
  searchQuery: string;
  searchHits: SearchHit[] | null;
  /** A message to bring into view (search result). */
  focusMessageId: string | null;
  notice: string | null;
  /** Writes to the backend not yet finished (the page shows data-saved="false" meanwhile). */
  pendingWrites: number;
}

export const SETTINGS_KEY = "chatgate.settings";
export const EMPTY_MAP: MessageMap = new Map();

export function defaultSettings(): ChatSettings {
  const base: ChatSettings = { model: "", systemPrompt: "", temperature: null, maxTokens: null };
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "null") as Partial<ChatSettings> | null;
    if (saved && typeof saved === "object") return { ...base, ...saved };
  } catch {
    // nothing saved
  }
  return base;
}

/** Pinned first, then most recently updated. */
export function sortConversations(list: readonly Conversation[]): Conversation[] {
  return [...list].sort((a, b) => Number(b.pinned) - Number(a.pinned) || b.updatedAt - a.updatedAt);
}

export function titleFrom(text: string): string {
  const line = text.trim().split("\n")[0]?.trim() ?? "";
  return line.length > 48 ? line.slice(0, 47).trimEnd() + "…" : line;
}
