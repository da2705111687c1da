/**
 * Local mode: conversations live in this browser (IndexedDB) and answers stream straight from
 * /v1/chat/completions. Used while the server has no /api (GET /api/me is not 200).
 */

import { type Idb, openDb, Idb as IdbImpl } from "./idb";
import { requestBody, streamChat } from "./openai";
import { exportFilename, exportJson, exportMarkdown, parseImport } from "./transfer";
import type {
  AnswerRef,
  BranchShown,
  ChatBackend,
  ChatSettings,
  Conversation,
  ConversationPatch,
  ExportFile,
  ExportFormat,
  GenerationSink,
  Imported,
  Message,
  SearchHit,
  SendRequest,
  StartedGeneration,
} from "./types";
import { newId } from "../lib/ids";
import { fold, snippet } from "../lib/search";
import { deepestLeaf, threadOf, withSummaries, type MessageMap } from "../lib/tree";

export class LocalBackend implements ChatBackend {
  readonly mode = "local" as const;
  /** Files need the server (uploads, extraction, retrieval). */
  readonly acceptsFiles = false;

  constructor(private readonly db: Idb) {}

  static async open(): Promise<LocalBackend> {
    return new LocalBackend(new IdbImpl(await openDb()));
  }

  async listConversations(): Promise<Conversation[]> {
    return this.db.allConversations();
  }

  async createConversation(settings: ChatSettings, title = ""): Promise<Conversation> {
    const now = Date.now();
    const c: Conversation = {
      id: newId(),
      title,
      pinned: false,
      createdAt: now,
      updatedAt: now,
      settings: { ...settings },
      leafId: null,
    };
    await this.db.putConversation(c);
    return c;
  }

  async updateConversation(id: string, patch: ConversationPatch): Promise<Conversation> {
    const next = await this.db.updateConversation(id, (old) => ({
      ...old,
      ...(patch.title !== undefined ? { title: patch.title } : {}),
      ...(patch.pinned !== undefined ? { pinned: patch.pinned } : {}),
      ...(patch.leafId !== undefined ? { leafId: patch.leafId } : {}),
      settings: { ...old.settings, ...patch.settings },
      updatedAt: Date.now(),
    }));
    if (!next) throw new Error(`conversation ${id} not found`);
    return next;
  }

  async deleteConversation(id: string): Promise<void> {
    await this.db.deleteConversation(id);
  }

  async loadMessages(id: string): Promise<Message[]> {
    const all = await this.db.messagesOf(id);
    return all.sort((a, b) => a.createdAt - b.createdAt);
  }

  async search(query: string): Promise<SearchHit[]> {
    const q = fold(query.trim());
    if (!q) return [];
    const [conversations, messages] = await Promise.all([
      this.db.allConversations(),
      this.db.allMessages(),
    ]);
    const byId = new Map(conversations.map((c) => [c.id, c]));
    const hits: SearchHit[] = [];
    const seen = new Set<string>();
    for (const c of conversations) {
      if (fold(c.title).includes(q)) {
        hits.push({ conversationId: c.id, messageId: null, title: c.title, snippet: c.title });
        seen.add(c.id);
      }
    }
    messages.sort((a, b) => b.createdAt - a.createdAt);
    for (const m of messages) {
      const c = byId.get(m.conversationId);
      if (!c) continue;
      const s = snippet(m.content, query);
      if (s === null) continue;
      hits.push({ conversationId: c.id, messageId: m.id, title: c.title, snippet: s });
      seen.add(c.id);
      if (hits.length >= 50) break;
    }
    return hits;
  }

  async send(request: SendRequest, sinks: readonly GenerationSink[]): Promise<StartedGeneration> {
    const { conversation } = request;
    const now = Date.now();
    let parentId = request.parentId;
    let userMessage: Message | null = null;
    let history = request.history;
    if (request.content !== null) {
      userMessage = {
        id: newId(),
        conversationId: conversation.id,
        parentId,
        role: "user",
        content: request.content,
        status: "done",
        createdAt: now,
      };
      parentId = userMessage.id;
      history = [...history, userMessage];
      await this.db.putMessages([userMessage]);
    }
    // Side by side: each model streams its own answer, a sibling of the others.
    const models = request.models?.length ? request.models : [conversation.settings.model];
    const answers = sinks.map((sink, i) => {
      const model = models[i] ?? conversation.settings.model;
      const assistant: Message = {
        id: newId(),
        conversationId: conversation.id,
        parentId,
        role: "assistant",
        content: "",
        status: "streaming",
        model,
        createdAt: now + 1 + i,
      };
      const controller = new AbortController();
      const body = requestBody({ ...conversation.settings, model }, history);
      return {
        assistant,
        done: streamChat(body, sink, controller.signal),
        stop: () => {
          controller.abort();
        },
      };
    });
    return { userMessage, answers };
  }

  async loadAnswer(conversationId: string, ref: AnswerRef): Promise<Message> {
    const found = (await this.db.messagesOf(conversationId)).find((m) => m.id === ref.id);
    if (!found) throw new Error(`message ${ref.id} not found`);
    return found;
  }

  resume(): null {
    // A local answer streams in the tab that asked; it is not resumable.
    return null;
  }

  async answerStarted(conversationId: string, assistantId: string, title: string | null): Promise<Conversation> {
    return this.updateConversation(conversationId, { leafId: assistantId, ...(title ? { title } : {}) });
  }

  /** The browser keeps the tree: the final answer is stored as the store has it. */
  async answerEnded(final: Message): Promise<null> {
    await this.db.putMessages([final]);
    return null;
  }

  /** The newest branch under the sibling becomes the leaf. */
  async showBranch(conversation: Conversation, siblingId: string, tree: MessageMap): Promise<BranchShown> {
    const leafId = deepestLeaf(tree, siblingId);
    return { conversation: await this.updateConversation(conversation.id, { leafId }), branch: null };
  }

  /** Summaries come here only inside an import from the server; they stay editable. */
  async editSummary(conversationId: string, messageId: string, content: string): Promise<Message> {
    const found = (await this.db.messagesOf(conversationId)).find((m) => m.id === messageId);
    if (found?.role !== "summary") throw new Error("Only summaries are edited in place.");
    const next = { ...found, content };
    await this.db.putMessages([next]);
    return next;
  }

  async exportConversation(id: string, format: ExportFormat): Promise<ExportFile> {
    const conv = await this.db.conversation(id);
    if (!conv) throw new Error(`conversation ${id} not found`);
    const messages = await this.loadMessages(id);
    if (format === "json") {
      const text = JSON.stringify(exportJson(conv, messages), null, 2);
      return { filename: exportFilename(id, format), mimeType: "application/json", text };
    }
    const map = new Map(messages.map((m) => [m.id, m]));
    const text = exportMarkdown(conv, withSummaries(map, threadOf(map, conv.leafId)));
    return { filename: exportFilename(id, format), mimeType: "text/markdown;charset=utf-8", text };
  }

  async importConversation(data: unknown, fallbackModel: string): Promise<Imported> {
    const defaults: ChatSettings = { model: fallbackModel, systemPrompt: "", temperature: null, maxTokens: null };
    const imported = parseImport(data, defaults, newId);
    await this.db.putMessages(imported.messages, imported.conversation);
    return imported;
  }
}
