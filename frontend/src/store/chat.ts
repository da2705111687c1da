/**
 * The chat state and every action on it, outside React. Components subscribe to slices
 * (useChat(selector)); updates replace only what changed, so memoised components skip work.
 * A streaming answer does not go through here per token: it lives in a StreamBuffer that only
 * the streaming message subscribes to.
 */

import { useSyncExternalStore } from "react";
import { detectCapability, openBackend } from "../api";
import { listModels } from "../api/openai";
import type {
  ChatBackend,
  ChatSettings,
  Conversation,
  ConversationPatch,
  ExportFile,
  ExportFormat,
  GenerationResult,
  Message,
} from "../api/types";
import { StreamBuffer } from "../lib/streamBuffer";
import { LiveUpdates } from "./live";
import {
  EMPTY_MAP,
  SETTINGS_KEY,
  defaultSettings,
  sortConversations,
  titleFrom,
  type ChatState,
} from "./state";
import { deepestLeaf, threadOf, type MessageMap } from "../lib/tree";

export type { ChatState, Generation } from "./state";

export class ChatStore {
  private state: ChatState;
  private readonly listeners = new Set<() => void>();
  private backend: ChatBackend | null = null;
  private searchSeq = 0;
  /** Sends not yet answered by the backend, and the answers this tab started (live updates). */
  private sending: Promise<unknown>[] = [];
  private readonly mine = new Set<string>();

  constructor() {
    this.state = {
      status: "starting",
      mode: null,
      startError: null,
      conversations: [],
      activeId: null,
      messages: new Map(),
      generation: null,
      models: [],
      modelsError: null,
      draft: defaultSettings(),
      searchQuery: "",
      searchHits: null,
      focusMessageId: null,
      notice: null,
      pendingWrites: 0,
    };
  }

  readonly getState = (): ChatState => this.state;

  readonly subscribe = (l: () => void): (() => void) => {
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  };

  private set(patch: Partial<ChatState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l();
  }

  // ---- start ----------------------------------------------------------------------------
  async start(initialId: string | null): Promise<void> {
    void this.loadModels();
    try {
      const mode = await detectCapability();
      if (mode === "login") {
        this.set({ status: "login", mode });
        return;
      }
      this.backend = await openBackend(mode);
      const conversations = sortConversations(await this.backend.listConversations());
      this.set({ status: "ready", mode, conversations });
      const live = new LiveUpdates(this);
      this.backend.watch?.((event) => {
        live.handle(event);
      });
      if (initialId && conversations.some((c) => c.id === initialId)) await this.open(initialId);
    } catch (e) {
      this.set({ status: "failed", startError: e instanceof Error ? e.message : String(e) });
    }
  }

  async loadModels(): Promise<void> {
    try {
      const models = await listModels();
      const draft = this.state.draft;
      const patch: Partial<ChatState> = { models, modelsError: null };
      if (models.length && !models.some((m) => m.id === draft.model)) {
        patch.draft = { ...draft, model: models[0]?.id ?? "" };
      }
      this.set(patch);
    } catch (e) {
      this.set({ modelsError: e instanceof Error ? e.message : String(e) });
    }
  }

  private need(): ChatBackend {
    if (!this.backend) throw new Error("not started");
    return this.backend;
  }

  // ---- selectors ------------------------------------------------------------------------
  active(): Conversation | null {
    const { activeId, conversations } = this.state;
    return activeId === null ? null : (conversations.find((c) => c.id === activeId) ?? null);
  }

  settings(): ChatSettings {
    return this.active()?.settings ?? this.state.draft;
  }

  messagesOf(id: string | null): MessageMap {
    return id === null ? EMPTY_MAP : (this.state.messages.get(id) ?? EMPTY_MAP);
  }

  thread(id: string | null = this.state.activeId): Message[] {
    const c = id === null ? null : this.state.conversations.find((x) => x.id === id);
    return threadOf(this.messagesOf(id), c?.leafId ?? null);
  }

  // ---- conversations --------------------------------------------------------------------
  newChat(): void {
    this.set({ activeId: null, focusMessageId: null });
  }

  async open(id: string, focusMessageId: string | null = null): Promise<void> {
    this.set({ activeId: id, focusMessageId });
    if (this.state.messages.has(id)) return;
    try {
      const list = await this.need().loadMessages(id);
      this.putMessages(id, list);
      this.resumeIfStreaming(id);
    } catch (e) {
      this.notify(e);
    }
  }

  /** Run one backend write, counted in pendingWrites while it runs. */
  private async write<T>(run: () => Promise<T>): Promise<T> {
    this.set({ pendingWrites: this.state.pendingWrites + 1 });
    try {
      return await run();
    } finally {
      this.set({ pendingWrites: this.state.pendingWrites - 1 });
    }
  }

  private putMessages(conversationId: string, list: readonly Message[]): void {
    const map = new Map(this.state.messages.get(conversationId) ?? EMPTY_MAP);
    for (const m of list) map.set(m.id, m);
    const messages = new Map(this.state.messages);
    messages.set(conversationId, map);
    this.set({ messages });
  }

  private replaceConversation(c: Conversation, add = true): void {
    const exists = this.state.conversations.some((x) => x.id === c.id);
    if (!exists && !add) return;
    const list = exists
      ? this.state.conversations.map((x) => (x.id === c.id ? c : x))
      : [c, ...this.state.conversations];
    this.set({ conversations: sortConversations(list) });
  }

  async update(id: string, patch: ConversationPatch): Promise<void> {
    // Optimistic: the list reacts at once; the stored copy follows.
    const old = this.state.conversations.find((c) => c.id === id);
    if (old) {
      this.replaceConversation({
        ...old,
        ...(patch.title !== undefined ? { title: patch.title } : {}),
        ...(patch.pinned !== undefined ? { pinned: patch.pinned } : {}),
        ...(patch.leafId !== undefined ? { leafId: patch.leafId } : {}),
        settings: { ...old.settings, ...patch.settings },
      });
    }
    // The backend gets complete settings (the server replaces sampling params whole).
    const full: ConversationPatch =
      old && patch.settings ? { ...patch, settings: { ...old.settings, ...patch.settings } } : patch;
    try {
      const stored = await this.write(() => this.need().updateConversation(id, full));
      this.replaceConversation(stored, false); // deleted meanwhile: stays deleted
    } catch (e) {
      if (old) this.replaceConversation(old, false);
      this.notify(e);
    }
  }

  rename(id: string, title: string): Promise<void> {
    return this.update(id, { title: title.trim() });
  }

  togglePin(id: string): Promise<void> {
    const c = this.state.conversations.find((x) => x.id === id);
    return this.update(id, { pinned: !c?.pinned });
  }

  /** Forget a conversation here (its answer stopped, left if on screen); also a LiveTarget call. */
  drop(conversationId: string): void {
    if (this.state.generation?.conversationId === conversationId) this.state.generation.stop();
    const messages = new Map(this.state.messages);
    messages.delete(conversationId);
    this.set({
      conversations: this.state.conversations.filter((c) => c.id !== conversationId),
      messages,
      activeId: this.state.activeId === conversationId ? null : this.state.activeId,
    });
  }

  async remove(id: string): Promise<void> {
    this.drop(id);
    try {
      await this.write(() => this.need().deleteConversation(id));
    } catch (e) {
      this.notify(e);
    }
  }

  updateSettings(patch: Partial<ChatSettings>): void {
    const c = this.active();
    const draft = { ...this.state.draft, ...patch };
    this.set({ draft });
    try {
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(draft));
    } catch {
      // not remembered
    }
    if (c) void this.update(c.id, { settings: patch });
  }

  async search(query: string): Promise<void> {
    const seq = ++this.searchSeq;
    this.set({ searchQuery: query });
    if (!query.trim()) {
      this.set({ searchHits: null });
      return;
    }
    try {
      const hits = await this.need().search(query);
      if (seq === this.searchSeq) this.set({ searchHits: hits });
    } catch (e) {
      this.notify(e);
    }
  }

  /** Show another version (sibling) of a message: its newest branch becomes the leaf. */
  switchBranch(conversationId: string, siblingId: string): void {
    if (this.state.generation?.conversationId === conversationId) return;
    if (this.state.mode === "server") {
      // The server holds the tree: point the conversation at the sibling, load that branch.
      void this.update(conversationId, { leafId: siblingId }).then(() => this.reload(conversationId));
      return;
    }
    const leaf = deepestLeaf(this.messagesOf(conversationId), siblingId);
    void this.update(conversationId, { leafId: leaf });
  }

  /** Server mode: replace a conversation's messages with the server's branch (and its title). */
  async reload(conversationId: string): Promise<void> {
    try {
      const backend = this.need();
      const list = await backend.loadMessages(conversationId);
      const messages = new Map(this.state.messages);
      messages.set(conversationId, new Map(list.map((m) => [m.id, m])));
      const leaf = [...list].reverse().find((m) => m.role !== "summary");
      this.set({ messages });
      const c = this.state.conversations.find((x) => x.id === conversationId);
      if (c && leaf) this.replaceConversation({ ...c, leafId: leaf.id });
      const fresh = await backend.listConversations();
      const again = fresh.find((x) => x.id === conversationId);
      if (again) this.replaceConversation(again);
    } catch (e) {
      this.notify(e);
    }
  }

  // ---- generation -----------------------------------------------------------------------
  /** Send a new message at the end of the branch on screen. */
  async send(text: string): Promise<void> {
    const content = text.trim();
    if (!content || this.state.generation || this.state.status !== "ready") return;
    let c = this.active();
    if (!c) {
      try {
        const draft = this.state.draft;
        c = await this.write(() => this.need().createConversation(draft, titleFrom(content)));
      } catch (e) {
        this.notify(e);
        return;
      }
      this.replaceConversation(c);
      const messages = new Map(this.state.messages);
      messages.set(c.id, new Map());
      this.set({ activeId: c.id, messages });
    }
    const history = this.thread(c.id);
    const parentId = history[history.length - 1]?.id ?? null;
    await this.generate(c, history, parentId, content);
  }

  /** A new answer to the user message before `assistantId`. */
  async regenerate(assistantId: string): Promise<void> {
    const c = this.active();
    if (!c || this.state.generation) return;
    const thread = this.thread(c.id);
    const at = thread.findIndex((m) => m.id === assistantId);
    const parent = thread[at - 1];
    if (at < 0 || !parent) return;
    await this.generate(c, thread.slice(0, at), parent.id, null, { regenerateOf: assistantId });
  }

  /** Replace a user message with new text (a new branch) and answer it. */
  async editAndResend(userMessageId: string, text: string): Promise<void> {
    const c = this.active();
    const content = text.trim();
    if (!c || !content || this.state.generation) return;
    const thread = this.thread(c.id);
    const at = thread.findIndex((m) => m.id === userMessageId);
    if (at < 0) return;
    const parentId = thread[at]?.parentId ?? null;
    await this.generate(c, thread.slice(0, at), parentId, content, { editOf: userMessageId });
  }

  stop(): void {
    this.state.generation?.stop();
  }

  private async generate(
    conversation: Conversation,
    history: Message[],
    parentId: string | null,
    content: string | null,
    intent: { editOf?: string; regenerateOf?: string } = {},
  ): Promise<void> {
    const backend = this.need();
    const buffer = new StreamBuffer();
    let started;
    const sending = backend.send({ conversation, history, parentId, content, ...intent }, buffer);
    this.sending.push(sending);
    try {
      started = await sending;
    } catch (e) {
      this.notify(e);
      return;
    } finally {
      this.sending = this.sending.filter((p) => p !== sending);
    }
    const { userMessage, assistant } = started;
    this.mine.add(assistant.id);
    this.putMessages(conversation.id, userMessage ? [userMessage, assistant] : [assistant]);
    this.set({
      generation: {
        conversationId: conversation.id,
        assistantId: assistant.id,
        buffer,
        stop: () => {
          started.stop();
        },
      },
    });
    const first = !history.length && conversation.title === "" && content !== null;
    if (backend.mode === "server") {
      // The server already moved its active leaf (and titles the chat itself).
      const c = this.state.conversations.find((x) => x.id === conversation.id);
      if (c) this.replaceConversation({ ...c, leafId: assistant.id, updatedAt: Date.now() });
    } else {
      void this.update(conversation.id, {
        leafId: assistant.id,
        ...(first ? { title: titleFrom(content) } : {}),
      });
    }

    await this.finish(backend, assistant, buffer, await started.done);
  }

  /** An answer ended: keep what the buffer holds, then store it (local) or re-read it (server). */
  private async finish(
    backend: ChatBackend,
    assistant: Message,
    buffer: StreamBuffer,
    result: GenerationResult,
  ): Promise<void> {
    const snap = buffer.close();
    const final: Message = {
      ...assistant,
      content: snap.content,
      status: result.status,
      ...(snap.reasoning ? { reasoning: snap.reasoning } : {}),
      ...(snap.usage ? { usage: snap.usage } : {}),
      ...(result.error !== undefined ? { error: result.error } : {}),
    };
    this.putMessages(assistant.conversationId, [final]);
    this.set({ generation: null });
    if (backend.mode === "server") {
      await this.reload(assistant.conversationId);
      return;
    }
    try {
      await this.write(() => backend.saveMessage(final));
    } catch (e) {
      this.notify(e);
    }
  }

  // ---- live updates (LiveTarget) -----------------------------------------------------------
  activeId(): string | null {
    return this.state.activeId;
  }

  streamingIn(conversationId: string): boolean {
    return this.state.generation?.conversationId === conversationId;
  }

  async settled(): Promise<void> {
    await Promise.allSettled(this.sending);
  }

  startedHere(messageId: string): boolean {
    return this.mine.has(messageId);
  }

  async refreshList(): Promise<void> {
    try {
      this.set({ conversations: sortConversations(await this.need().listConversations()) });
    } catch (e) {
      this.notify(e);
    }
  }

  async reloadAndFollow(conversationId: string): Promise<void> {
    await this.reload(conversationId);
    this.resumeIfStreaming(conversationId);
  }

  /** Server mode: an answer still being written (reloaded page, second tab) is followed live. */
  private resumeIfStreaming(conversationId: string): void {
    if (this.state.generation || !this.backend) return;
    const backend = this.backend;
    const live = this.thread(conversationId).find((m) => m.role === "assistant" && m.status === "streaming");
    if (!live) return;
    const buffer = new StreamBuffer();
    const run = backend.resume(live, buffer);
    if (!run) return;
    this.set({
      generation: {
        conversationId,
        assistantId: live.id,
        buffer,
        stop: () => {
          run.stop();
        },
      },
    });
    void run.done.then((result) => this.finish(backend, live, buffer, result));
  }

  // ---- summaries, export, import --------------------------------------------------------
  /** Change a summary checkpoint's text in place (the next answer starts from it). */
  async editSummary(conversationId: string, messageId: string, content: string): Promise<boolean> {
    try {
      const saved = await this.write(() => this.need().editSummary(conversationId, messageId, content));
      this.putMessages(conversationId, [saved]);
      return true;
    } catch (e) {
      this.notify(e);
      return false;
    }
  }

  /** The open conversation as a file; null (with a notice) when it cannot be had. */
  async exportActive(format: ExportFormat): Promise<ExportFile | null> {
    const id = this.state.activeId;
    if (id === null) return null;
    try {
      return await this.need().exportConversation(id, format);
    } catch (e) {
      this.notify(e);
      return null;
    }
  }

  /** A parsed JSON export becomes a new conversation, and opens. */
  async importData(data: unknown): Promise<void> {
    try {
      const model = this.state.draft.model;
      const { conversation, messages } = await this.write(() => this.need().importConversation(data, model));
      const all = new Map(this.state.messages);
      all.set(conversation.id, new Map(messages.map((m) => [m.id, m])));
      this.set({ messages: all, activeId: conversation.id, focusMessageId: null });
      this.replaceConversation(conversation);
    } catch (e) {
      this.notify(e);
    }
  }

  // ---- notices --------------------------------------------------------------------------
  notify(e: unknown): void {
    this.set({ notice: e instanceof Error ? e.message : String(e) });
  }

  dismissNotice(): void {
    this.set({ notice: null });
  }
}

export const store = new ChatStore();

export function useChat<T>(selector: (s: ChatState) => T): T {
  return useSyncExternalStore(store.subscribe, () => selector(store.getState()));
}
