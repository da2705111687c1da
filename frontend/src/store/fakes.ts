/** Test doubles for the store's slices: an in-memory backend whose answers the test ends. */

import type {
  AnswerRef,
  BranchShown,
  ChatBackend,
  ChatSettings,
  Conversation,
  ConversationPatch,
  ExportFile,
  GenerationResult,
  GenerationSink,
  Imported,
  Message,
  RunningGeneration,
  SearchHit,
  SendRequest,
  StartedGeneration,
} from "../api/types";
import { deepestLeaf, threadOf, type MessageMap } from "../lib/tree";
import { StoreCore, initialState } from "./core";
import type { ChatState } from "./state";

export const SETTINGS: ChatSettings = { model: "m1", systemPrompt: "", temperature: null, maxTokens: null };

export function conversation(id: string, extra: Partial<Conversation> = {}): Conversation {
  return { id, title: "", pinned: false, createdAt: 1, updatedAt: 1, settings: SETTINGS, leafId: null, ...extra };
}

export function message(id: string, parentId: string | null, role: Message["role"], extra: Partial<Message> = {}): Message {
  return { id, conversationId: "c1", parentId, role, content: id, status: "done", createdAt: 0, ...extra };
}

interface Pending {
  sink: GenerationSink;
  end(result: GenerationResult): void;
  request: SendRequest;
}

/**
 * `owns`: the backend holds the tree and generation (as the server does): it moves the leaf
 * itself and answers the stored branch when an answer ends; else it behaves as the browser's
 * store (the slice records the leaf and the final text through it).
 */
export class FakeBackend implements ChatBackend {
  readonly mode: "local" | "server";
  readonly acceptsFiles: boolean;
  conversations = new Map<string, Conversation>();
  messages = new Map<string, Message>();
  pending: Pending[] = [];
  calls: string[] = [];
  private seq = 0;

  constructor(readonly owns = false) {
    this.mode = owns ? "server" : "local";
    this.acceptsFiles = owns;
  }

  private id(prefix: string): string {
    this.seq += 1;
    return `${prefix}-n${this.seq}`;
  }

  listConversations(): Promise<Conversation[]> {
    return Promise.resolve([...this.conversations.values()]);
  }
  createConversation(settings: ChatSettings, title = ""): Promise<Conversation> {
    const c = conversation(this.id("c"), { settings, title });
    this.conversations.set(c.id, c);
    this.calls.push(`create ${title}`);
    return Promise.resolve(c);
  }
  updateConversation(id: string, patch: ConversationPatch): Promise<Conversation> {
    const old = this.conversations.get(id);
    if (!old) return Promise.reject(new Error(`conversation ${id} not found`));
    const { settings, ...rest } = patch;
    const next = { ...old, ...rest, settings: { ...old.settings, ...settings }, updatedAt: old.updatedAt + 1 };
    this.conversations.set(id, next);
    this.calls.push(`update ${JSON.stringify(patch)}`);
    return Promise.resolve(next);
  }
  deleteConversation(id: string): Promise<void> {
    this.conversations.delete(id);
    this.calls.push(`delete ${id}`);
    return Promise.resolve();
  }
  loadMessages(id: string): Promise<Message[]> {
    return Promise.resolve([...this.messages.values()].filter((m) => m.conversationId === id));
  }
  search(query: string): Promise<SearchHit[]> {
    return Promise.resolve([{ conversationId: "c1", messageId: null, title: query, snippet: query }]);
  }
  send(request: SendRequest, sinks: readonly GenerationSink[]): Promise<StartedGeneration> {
    const cid = request.conversation.id;
    const userMessage =
      request.content === null
        ? null
        : message(this.id("u"), request.parentId, "user", {
            conversationId: cid,
            content: request.content,
            ...(request.attachments ? { attachments: request.attachments } : {}),
          });
    const models = request.models ?? [request.conversation.settings.model];
    const answers = sinks.map((sink, i) => {
      const assistant = message(this.id("a"), userMessage?.id ?? request.parentId, "assistant", {
        conversationId: cid,
        content: "",
        status: "streaming",
        model: models[i] ?? "m1",
        generationId: this.id("g"),
        createdAt: i,
      });
      this.messages.set(assistant.id, assistant);
      let end: (r: GenerationResult) => void = () => undefined;
      const done = new Promise<GenerationResult>((resolve) => {
        end = resolve;
      });
      this.pending.push({ sink, end, request });
      return { assistant, done, stop: () => { end({ status: "stopped" }); } };
    });
    if (userMessage) this.messages.set(userMessage.id, userMessage);
    if (this.owns) {
      const c = this.conversations.get(cid);
      if (c && answers[0]) this.conversations.set(cid, { ...c, leafId: answers[0].assistant.id });
    }
    this.calls.push(`send ${request.content ?? "(regenerate)"}${request.models ? ` ${request.models.join("+")}` : ""}`);
    return Promise.resolve({ userMessage, answers });
  }
  loadAnswer(_c: string, ref: AnswerRef): Promise<Message> {
    this.calls.push(`loadAnswer ${ref.id}`);
    const m = this.messages.get(ref.id);
    return m ? Promise.resolve(m) : Promise.reject(new Error("gone"));
  }
  resume(m: Message, sink: GenerationSink): RunningGeneration | null {
    if (!this.owns) return null;
    let end: (r: GenerationResult) => void = () => undefined;
    const done = new Promise<GenerationResult>((resolve) => {
      end = resolve;
    });
    this.pending.push({ sink, end, request: { conversation: conversation(m.conversationId), history: [], parentId: null, content: null } });
    this.calls.push(`resume ${m.id}`);
    return { done, stop: () => { end({ status: "stopped" }); } };
  }
  answerStarted(conversationId: string, assistantId: string, title: string | null): Promise<Conversation | null> {
    this.calls.push(`started ${assistantId} ${title ?? ""}`.trim());
    return this.owns ? Promise.resolve(null) : this.updateConversation(conversationId, { leafId: assistantId, ...(title ? { title } : {}) });
  }
  answerEnded(final: Message): Promise<Message[] | null> {
    this.calls.push(`ended ${final.id} ${final.status ?? ""} ${final.content}`);
    if (!this.owns) {
      this.messages.set(final.id, final);
      return Promise.resolve(null);
    }
    this.messages.set(final.id, { ...final, content: `${final.content} (stored)` });
    // The server sends the active branch only.
    const c = this.conversations.get(final.conversationId);
    const all = new Map([...this.messages].filter(([, m]) => m.conversationId === final.conversationId));
    return Promise.resolve(threadOf(all, c?.leafId ?? null));
  }
  async showBranch(c: Conversation, siblingId: string, tree: MessageMap): Promise<BranchShown> {
    // The server is told the sibling and answers with the branch's end; the browser works it out.
    const leafId = deepestLeaf(tree, siblingId);
    const stored = await this.updateConversation(c.id, { leafId: this.owns ? siblingId : leafId });
    return { conversation: { ...stored, leafId }, branch: this.owns ? await this.loadMessages(c.id) : null };
  }
  editSummary(_c: string, messageId: string, content: string): Promise<Message> {
    return Promise.resolve(message(messageId, null, "summary", { content }));
  }
  exportConversation(id: string): Promise<ExportFile> {
    return Promise.resolve({ filename: `${id}.json`, mimeType: "application/json", text: "{}" });
  }
  importConversation(_data: unknown, fallbackModel: string): Promise<Imported> {
    const c = conversation("imported", { settings: { ...SETTINGS, model: fallbackModel } });
    return Promise.resolve({ conversation: c, messages: [message("i1", null, "user", { conversationId: c.id })] });
  }

  /** End the oldest running answer with `text`. */
  answer(text: string, result: GenerationResult = { status: "done" }): void {
    const p = this.pending.shift();
    if (!p) throw new Error("no answer running");
    p.sink.content(text);
    p.end(result);
  }
}

/** A started store kernel on `backend`, state overridable. */
export function core(backend: ChatBackend, state: Partial<ChatState> = {}): StoreCore {
  const c = new StoreCore({ ...initialState(), draft: SETTINGS, status: "ready", mode: backend.mode, ...state });
  c.useBackend(backend);
  return c;
}

/** Let pending promise callbacks run. */
export const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));
