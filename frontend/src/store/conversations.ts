/**
 * The conversations slice: the list, the one on screen, its loaded messages, branches, search
 * and settings. Reaches the rest of the store only through DataHost.
 */

import type { ChatSettings, Conversation, ConversationPatch, Message } from "../api/types";
import { threadOf, type MessageMap } from "../lib/tree";
import type { StoreHost } from "./core";
import { EMPTY_MAP, SETTINGS_KEY, sortConversations } from "./state";

/** The store as the data slices see it: the shared kernel plus its two writes to loaded data. */
export interface DataHost extends StoreHost {
  putMessages(conversationId: string, list: readonly Message[]): void;
  putConversation(c: Conversation, add?: boolean): void;
}

export class ConversationsSlice {
  private searchSeq = 0;

  constructor(
    private readonly host: DataHost,
    /** A conversation's messages were (re)loaded: follow an answer still being written. */
    private readonly onLoaded: (conversationId: string) => void = () => undefined,
  ) {}

  // ---- selectors ------------------------------------------------------------------------
  active(): Conversation | null {
    const { activeId, conversations } = this.host.getState();
    return activeId === null ? null : (conversations.find((c) => c.id === activeId) ?? null);
  }

  settings(): ChatSettings {
    return this.active()?.settings ?? this.host.getState().draft;
  }

  messagesOf(id: string | null): MessageMap {
    return id === null ? EMPTY_MAP : (this.host.getState().messages.get(id) ?? EMPTY_MAP);
  }

  thread(id: string | null = this.host.getState().activeId): Message[] {
    const c = id === null ? null : this.host.getState().conversations.find((x) => x.id === id);
    return threadOf(this.messagesOf(id), c?.leafId ?? null);
  }

  // ---- actions --------------------------------------------------------------------------
  newChat(): void {
    this.host.set({ activeId: null, focusMessageId: null });
  }

  async open(id: string, focusMessageId: string | null = null): Promise<void> {
    const h = this.host;
    h.set({ activeId: id, focusMessageId });
    if (h.getState().messages.has(id)) return;
    try {
      h.putMessages(id, await h.backend().loadMessages(id));
      this.onLoaded(id);
    } catch (e) {
      h.notify(e);
    }
  }

  async update(id: string, patch: ConversationPatch): Promise<void> {
    const h = this.host;
    // Optimistic: the list reacts at once; the stored copy follows.
    const old = h.getState().conversations.find((c) => c.id === id);
    if (old) {
      h.putConversation({
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
      const stored = await h.write(() => h.backend().updateConversation(id, full));
      h.putConversation(stored, false); // deleted meanwhile: stays deleted
    } catch (e) {
      if (old) h.putConversation(old, false);
      h.notify(e);
    }
  }

  rename(id: string, title: string): Promise<void> {
    return this.update(id, { title: title.trim() });
  }

  togglePin(id: string): Promise<void> {
    const c = this.host.getState().conversations.find((x) => x.id === id);
    return this.update(id, { pinned: !c?.pinned });
  }

  /** Forget a conversation here (its answer stopped, left if on screen). */
  drop(conversationId: string): void {
    const s = this.host.getState();
    if (s.generation?.conversationId === conversationId) s.generation.stop();
    const messages = new Map(s.messages);
    messages.delete(conversationId);
    this.host.set({
      conversations: s.conversations.filter((c) => c.id !== conversationId),
      messages,
      activeId: s.activeId === conversationId ? null : s.activeId,
    });
  }

  async remove(id: string): Promise<void> {
    this.drop(id);
    try {
      await this.host.write(() => this.host.backend().deleteConversation(id));
    } catch (e) {
      this.host.notify(e);
    }
  }

  updateSettings(patch: Partial<ChatSettings>): void {
    const c = this.active();
    const draft = { ...this.host.getState().draft, ...patch };
    this.host.set({ draft });
    try {
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(draft));
    } catch {
      // not remembered
    }
    if (c) void this.update(c.id, { settings: patch });
  }

  async search(query: string): Promise<void> {
    const h = this.host;
    const seq = ++this.searchSeq;
    h.set({ searchQuery: query });
    if (!query.trim()) {
      h.set({ searchHits: null });
      return;
    }
    try {
      const hits = await h.backend().search(query);
      if (seq === this.searchSeq) h.set({ searchHits: hits });
    } catch (e) {
      h.notify(e);
    }
  }

  /** Show another version (sibling) of a message; not while an answer is written there. */
  async switchBranch(conversationId: string, siblingId: string): Promise<void> {
    const h = this.host;
    const c = h.getState().conversations.find((x) => x.id === conversationId);
    if (!c || h.getState().generation?.conversationId === conversationId) return;
    try {
      const shown = await h.write(() => h.backend().showBranch(c, siblingId, this.messagesOf(conversationId)));
      if (shown.branch) this.putBranch(conversationId, shown.branch);
      h.putConversation(shown.conversation, false);
      if (shown.branch) this.onLoaded(conversationId);
    } catch (e) {
      h.notify(e);
    }
  }

  /** Replace a conversation's messages with `branch`, its leaf with the branch's end. */
  private putBranch(conversationId: string, branch: readonly Message[]): void {
    const h = this.host;
    const messages = new Map(h.getState().messages);
    messages.set(conversationId, new Map(branch.map((m) => [m.id, m])));
    h.set({ messages });
    const leaf = [...branch].reverse().find((m) => m.role !== "summary");
    const c = h.getState().conversations.find((x) => x.id === conversationId);
    if (c && leaf) h.putConversation({ ...c, leafId: leaf.id });
  }

  /** The branch the backend now holds replaces what is loaded; the list is re-read (titles). */
  async applyBranch(conversationId: string, branch: readonly Message[]): Promise<void> {
    this.putBranch(conversationId, branch);
    try {
      const fresh = await this.host.backend().listConversations();
      const again = fresh.find((x) => x.id === conversationId);
      if (again) this.host.putConversation(again);
    } catch (e) {
      this.host.notify(e);
    }
  }

  /** Re-read a conversation from the backend (another tab changed it). */
  async reload(conversationId: string): Promise<void> {
    try {
      await this.applyBranch(conversationId, await this.host.backend().loadMessages(conversationId));
    } catch (e) {
      this.host.notify(e);
    }
  }

  async refreshList(): Promise<void> {
    try {
      this.host.set({ conversations: sortConversations(await this.host.backend().listConversations()) });
    } catch (e) {
      this.host.notify(e);
    }
  }
}
