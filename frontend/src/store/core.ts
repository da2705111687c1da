/**
 * The store's kernel: the state, its listeners, and the few operations every slice shares (set,
 * notify, counted writes, the backend). Slices get it through narrow host interfaces, so each
 * can be tested with a plain object standing in for the rest of the store.
 */

import type { ChatBackend, Conversation, Message } from "../api/types";
import { EMPTY_MAP, sortConversations, type ChatState } from "./state";

export function initialState(): Omit<ChatState, "draft"> {
  return {
    status: "starting",
    mode: null,
    startError: null,
    conversations: [],
    activeId: null,
    messages: new Map(),
    generation: null,
    comparisons: new Map(),
    acceptsFiles: false,
    files: new Map(),
    models: [],
    modelsError: null,
    searchQuery: "",
    searchHits: null,
    focusMessageId: null,
    notice: null,
    pendingWrites: 0,
  };
}

/** What every slice may do: read and change the state, reach the backend, report an error. */
export interface StoreHost {
  getState(): ChatState;
  set(patch: Partial<ChatState>): void;
  /** The backend chosen at start (throws before). */
  backend(): ChatBackend;
  /** Run one backend write, counted in pendingWrites while it runs. */
  write<T>(run: () => Promise<T>): Promise<T>;
  notify(e: unknown): void;
}

export class StoreCore implements StoreHost {
  private state: ChatState;
  private readonly listeners = new Set<() => void>();
  private chosen: ChatBackend | null = null;

  constructor(state: ChatState) {
    this.state = state;
  }

  readonly getState = (): ChatState => this.state;

  readonly subscribe = (l: () => void): (() => void) => {
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  };

  set(patch: Partial<ChatState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l();
  }

  useBackend(backend: ChatBackend): void {
    this.chosen = backend;
  }

  backend(): ChatBackend {
    if (!this.chosen) throw new Error("not started");
    return this.chosen;
  }

  async write<T>(run: () => Promise<T>): Promise<T> {
    this.set({ pendingWrites: this.state.pendingWrites + 1 });
    try {
      return await run();
    } finally {
      this.set({ pendingWrites: this.state.pendingWrites - 1 });
    }
  }

  notify(e: unknown): void {
    this.set({ notice: e instanceof Error ? e.message : String(e) });
  }

  // ---- the two writes to loaded data every slice makes ---------------------------------------
  /** Add or replace messages of a loaded conversation. */
  putMessages(conversationId: string, list: readonly Message[]): void {
    const map = new Map(this.state.messages.get(conversationId) ?? EMPTY_MAP);
    for (const m of list) map.set(m.id, m);
    const messages = new Map(this.state.messages);
    messages.set(conversationId, map);
    this.set({ messages });
  }

  /** Replace (or, with `add`, insert) a conversation in the sorted list. */
  putConversation(c: Conversation, add = true): void {
    const list = this.state.conversations;
    const exists = list.some((x) => x.id === c.id);
    if (!exists && !add) return;
    const next = exists ? list.map((x) => (x.id === c.id ? c : x)) : [c, ...list];
    this.set({ conversations: sortConversations(next) });
  }
}
