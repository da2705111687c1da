/**
 * The chat store: the state and every action on it, outside React. Components subscribe to
 * slices of the state (useChat(selector)); updates replace only what changed, so memoised
 * components skip work. The actions live in slices (conversations, generation, transfer), each
 * reaching the rest through a narrow host interface; this file builds them, starts the backend
 * and answers live updates.
 */

import { useSyncExternalStore } from "react";
import { detectCapability, openBackend } from "../api";
import { getFile, type Attachment, type StoredFile } from "../api/files";
import { listModels } from "../api/openai";
import type { ChatSettings, Conversation, ConversationPatch, ExportFile, ExportFormat, Message } from "../api/types";
import type { MessageMap } from "../lib/tree";
import { ConversationsSlice } from "./conversations";
import { StoreCore, initialState } from "./core";
import { GenerationSlice, type GenerationHost } from "./generation";
import { IndexingWatch } from "./indexing";
import { LiveUpdates, type LiveTarget } from "./live";
import { defaultSettings, sortConversations, type ChatState } from "./state";
import { TransferSlice } from "./transfer";

export type { ChatState, Comparison, Generation, LiveAnswer } from "./state";

export class ChatStore implements LiveTarget {
  private readonly core = new StoreCore({ ...initialState(), draft: defaultSettings() });
  private readonly conversations: ConversationsSlice;
  private readonly generation: GenerationSlice;
  private readonly transfer: TransferSlice;
  /** Polls a file that stays "indexing" in case its live event never comes. */
  private readonly indexing = new IndexingWatch({
    fetchFile: (id) => getFile(id),
    current: (id) => this.core.getState().files.get(id),
    changed: (file) => {
      this.putFile(file);
    },
  });

  constructor() {
    const core = this.core;
    this.conversations = new ConversationsSlice(core, (id) => {
      void this.generation.resumeIfStreaming(id);
    });
    // Spelled out: these eight are all generation may touch.
    const host: GenerationHost = {
      getState: () => core.getState(),
      set: (patch) => {
        core.set(patch);
      },
      backend: () => core.backend(),
      write: (run) => core.write(run),
      notify: (e) => {
        core.notify(e);
      },
      putMessages: (id, list) => {
        core.putMessages(id, list);
      },
      putConversation: (c, add) => {
        core.putConversation(c, add);
      },
      applyBranch: (id, branch) => this.conversations.applyBranch(id, branch),
    };
    this.generation = new GenerationSlice(host);
    this.transfer = new TransferSlice(core);
  }

  readonly getState = (): ChatState => this.core.getState();
  readonly subscribe = (l: () => void): (() => void) => this.core.subscribe(l);

  // ---- start ----------------------------------------------------------------------------
  async start(initialId: string | null): Promise<void> {
    const core = this.core;
    void this.loadModels();
    try {
      const mode = await detectCapability();
      if (mode === "login") {
        core.set({ status: "login", mode });
        return;
      }
      const backend = await openBackend(mode);
      core.useBackend(backend);
      const conversations = sortConversations(await backend.listConversations());
      core.set({ status: "ready", mode, conversations, acceptsFiles: backend.acceptsFiles });
      const live = new LiveUpdates(this);
      backend.watch?.((event) => {
        live.handle(event);
      });
      if (initialId && conversations.some((c) => c.id === initialId)) await this.open(initialId);
    } catch (e) {
      core.set({ status: "failed", startError: e instanceof Error ? e.message : String(e) });
    }
  }

  async loadModels(): Promise<void> {
    const core = this.core;
    try {
      const models = await listModels();
      const draft = core.getState().draft;
      const patch: Partial<ChatState> = { models, modelsError: null };
      if (models.length && !models.some((m) => m.id === draft.model)) {
        patch.draft = { ...draft, model: models[0]?.id ?? "" };
      }
      core.set(patch);
    } catch (e) {
      core.set({ modelsError: e instanceof Error ? e.message : String(e) });
    }
  }

  // ---- conversations --------------------------------------------------------------------
  active(): Conversation | null {
    return this.conversations.active();
  }
  settings(): ChatSettings {
    return this.conversations.settings();
  }
  messagesOf(id: string | null): MessageMap {
    return this.conversations.messagesOf(id);
  }
  thread(id?: string | null): Message[] {
    return this.conversations.thread(id);
  }
  newChat(): void {
    this.conversations.newChat();
  }
  open(id: string, focusMessageId: string | null = null): Promise<void> {
    return this.conversations.open(id, focusMessageId);
  }
  update(id: string, patch: ConversationPatch): Promise<void> {
    return this.conversations.update(id, patch);
  }
  rename(id: string, title: string): Promise<void> {
    return this.conversations.rename(id, title);
  }
  togglePin(id: string): Promise<void> {
    return this.conversations.togglePin(id);
  }
  remove(id: string): Promise<void> {
    return this.conversations.remove(id);
  }
  updateSettings(patch: Partial<ChatSettings>): void {
    this.conversations.updateSettings(patch);
  }
  search(query: string): Promise<void> {
    return this.conversations.search(query);
  }
  switchBranch(conversationId: string, siblingId: string): void {
    void this.conversations.switchBranch(conversationId, siblingId);
  }

  // ---- generation -----------------------------------------------------------------------
  /** With 2–3 models: each answers side by side (columns until one is kept); with uploaded
   * files attached to the message. */
  send(text: string, models: readonly string[] = [], attachments: readonly Attachment[] = []): Promise<void> {
    return this.generation.send(text, models, attachments);
  }
  /** Keep one side-by-side answer: the columns close and it becomes the branch on screen. */
  async keep(conversationId: string, answerId: string): Promise<void> {
    if (this.core.getState().generation?.conversationId === conversationId) return;
    this.generation.closeComparison(conversationId);
    await this.conversations.switchBranch(conversationId, answerId);
  }
  regenerate(assistantId: string): Promise<void> {
    return this.generation.regenerate(assistantId);
  }
  editAndResend(userMessageId: string, text: string): Promise<void> {
    return this.generation.editAndResend(userMessageId, text);
  }
  stop(): void {
    this.generation.stop();
  }

  // ---- summaries, export, import --------------------------------------------------------
  editSummary(conversationId: string, messageId: string, content: string): Promise<boolean> {
    return this.transfer.editSummary(conversationId, messageId, content);
  }
  exportActive(format: ExportFormat): Promise<ExportFile | null> {
    return this.transfer.exportActive(format);
  }
  importData(data: unknown): Promise<void> {
    return this.transfer.importData(data);
  }

  // ---- live updates (LiveTarget) -----------------------------------------------------------
  activeId(): string | null {
    return this.core.getState().activeId;
  }
  streamingIn(conversationId: string): boolean {
    return this.generation.streamingIn(conversationId);
  }
  settled(): Promise<void> {
    return this.generation.settled();
  }
  startedHere(messageId: string): boolean {
    return this.generation.startedHere(messageId);
  }
  refreshList(): Promise<void> {
    return this.conversations.refreshList();
  }
  drop(conversationId: string): void {
    this.conversations.drop(conversationId);
  }
  /** A file's state from a live event or an upload's answer; one still indexing is also
   * polled until it settles (the live event may never come). */
  fileChanged(file: StoredFile): void {
    const known = this.core.getState().files.get(file.id);
    if (file.status === "indexing" && known && known.status !== "indexing") return; // settled
    this.putFile(file);
    this.indexing.watch(file);
  }
  private putFile(file: StoredFile): void {
    const files = new Map(this.core.getState().files);
    files.set(file.id, file);
    this.core.set({ files });
  }
  async reloadAndFollow(conversationId: string): Promise<void> {
    await this.conversations.reload(conversationId);
    await this.generation.resumeIfStreaming(conversationId);
  }

  // ---- notices --------------------------------------------------------------------------
  notify(e: unknown): void {
    this.core.notify(e);
  }
  dismissNotice(): void {
    this.core.set({ notice: null });
  }
}

export const store = new ChatStore();

export function useChat<T>(selector: (s: ChatState) => T): T {
  return useSyncExternalStore(store.subscribe, () => selector(store.getState()));
}
