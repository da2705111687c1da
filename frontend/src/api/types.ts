/** The UI's data model, shared by the local (browser) and server (/api) backends. */

import type { MessageMap } from "../lib/tree";
import type { Attachment, Citation, StoredFile } from "./files";

/** "summary": a server-side checkpoint standing for earlier turns the model no longer sees. */
export type Role = "system" | "user" | "assistant" | "summary";

export type MessageStatus = "streaming" | "done" | "stopped" | "error";

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  reasoningTokens?: number;
}

export interface ChatSettings {
  model: string;
  systemPrompt: string;
  /** null: the model's default. */
  temperature: number | null;
  /** null: no limit sent. */
  maxTokens: number | null;
}

export interface Conversation {
  id: string;
  title: string;
  pinned: boolean;
  createdAt: number;
  updatedAt: number;
  settings: ChatSettings;
  /** The newest message of the branch on screen (messages form a tree through parentId). */
  leafId: string | null;
}

/** What the server sent the model for an answer (counts of message ids). */
export interface ContextInfo {
  sent: number;
  dropped: number;
  summarised: number;
  summaryId: string | null;
  /** The oldest message the model saw in full: the place of the "earlier messages" marker. */
  firstSentId?: string;
  /** The model's context window and the prompt's budget in it (window minus the reply). */
  window?: number;
  budget?: number;
  /** The server's own count of the prompt, when the upstream reports no usage. */
  promptEstimate?: number;
}

export interface Message {
  id: string;
  conversationId: string;
  parentId: string | null;
  role: Role;
  content: string;
  reasoning?: string;
  status?: MessageStatus;
  error?: string;
  usage?: Usage;
  model?: string;
  createdAt: number;
  /** Server mode: the generation writing this answer (followed again after a reload). */
  generationId?: string;
  /** Server mode: every version of this turn (the server sends only the active branch). */
  siblingIds?: string[];
  context?: ContextInfo;
  /** Files sent with a user message (server mode). */
  attachments?: Attachment[];
  /** Passages of the conversation's documents an answer's prompt carried. */
  citations?: Citation[];
}

export interface SearchHit {
  conversationId: string;
  messageId: string | null;
  title: string;
  snippet: string;
}

export type ConversationPatch = Partial<Pick<Conversation, "title" | "pinned" | "leafId">> & {
  settings?: Partial<ChatSettings>;
};

/** What a running generation reports, in order; the store batches it per animation frame. */
export interface GenerationSink {
  reasoning(text: string): void;
  content(text: string): void;
  usage(usage: Usage): void;
  /** The whole text so far, replacing what was received (a resumed or stored generation). */
  replace(content: string, reasoning: string): void;
}

export interface GenerationResult {
  status: Exclude<MessageStatus, "streaming">;
  error?: string;
}

export interface RunningGeneration {
  /** Settles when the answer ends, however it ends. Never rejects. */
  done: Promise<GenerationResult>;
  stop(): void;
}

/** One answer of a send: the assistant message being written and its run. */
export interface StartedAnswer extends RunningGeneration {
  /** The assistant message being written (status "streaming"). */
  assistant: Message;
}

export interface StartedGeneration {
  /** The user's message (absent when regenerating an existing turn). */
  userMessage: Message | null;
  /** One answer per sink passed to send (side by side: one per model, siblings), in order. */
  answers: StartedAnswer[];
}

export interface SendRequest {
  conversation: Conversation;
  /** Messages of the branch the new turn continues, oldest first (used for the local mode). */
  history: Message[];
  /** Parent of the new user message (or of the new answer when regenerating). */
  parentId: string | null;
  /** The user's text; null regenerates the answer to the message at parentId. */
  content: string | null;
  /** The user message this one replaces (edit and resend: a new branch). */
  editOf?: string;
  /** The answer this one replaces (regenerate: a new branch). */
  regenerateOf?: string;
  /** Side by side: one answer from each of these 2–3 models, instead of the conversation's. */
  models?: string[];
  /** Uploaded files sent with the user's message. */
  attachments?: Attachment[];
}

/** A conversation as a downloadable file. */
export interface ExportFile {
  filename: string;
  mimeType: string;
  text: string;
}

export type ExportFormat = "json" | "markdown";

/** A conversation just imported: it and its messages, ready to show. */
export interface Imported {
  conversation: Conversation;
  messages: Message[];
}

/** What another tab (or client) of the same user did, as the server announces it. */
export type LiveEvent =
  | { kind: "conversation"; action: "created" | "updated" | "deleted"; conversationId: string }
  | { kind: "started"; conversationId: string; generationId: string; messageId: string }
  /** An uploaded file changed (a document's indexing went on, finished or failed). */
  | { kind: "file"; file: StoredFile }
  /** Events may have been missed (a reconnect): re-read what is on screen. */
  | { kind: "resync" };

/** Where to find one answer again (after a reload). */
export interface AnswerRef {
  id: string;
  generationId?: string;
}

export interface BranchShown {
  conversation: Conversation;
  /** The branch now on screen, when the backend sends one branch at a time; else null. */
  branch: Message[] | null;
}

export interface ChatBackend {
  readonly mode: "local" | "server";
  /** Files can be attached (uploaded to and kept by the server). */
  readonly acceptsFiles: boolean;
  /** Hear what happens to the user's chats elsewhere (server mode); returns "stop hearing". */
  watch?(listener: (event: LiveEvent) => void): () => void;
  listConversations(): Promise<Conversation[]>;
  createConversation(settings: ChatSettings, title?: string): Promise<Conversation>;
  updateConversation(id: string, patch: ConversationPatch): Promise<Conversation>;
  deleteConversation(id: string): Promise<void>;
  /** Every message of the conversation's tree, oldest first. */
  loadMessages(id: string): Promise<Message[]>;
  search(query: string): Promise<SearchHit[]>;
  /** Start the answer(s): one sink per answer (request.models, or just one). */
  send(request: SendRequest, sinks: readonly GenerationSink[]): Promise<StartedGeneration>;
  /** An answer that is not on the branch loaded (a side-by-side sibling), by its ids. */
  loadAnswer(conversationId: string, ref: AnswerRef): Promise<Message>;
  /** Follow an answer that is still being written elsewhere (server mode: after a reload, or
   * in a second tab); null when this backend cannot. */
  resume(message: Message, sink: GenerationSink): RunningGeneration | null;
  /** An answer began: record the conversation's new leaf (and first title) where the backend
   * does not do it itself; the conversation as stored, or null when the backend already did. */
  answerStarted(conversationId: string, assistantId: string, title: string | null): Promise<Conversation | null>;
  /** An answer ended: keep the final text where the backend does not own generation; the
   * branch as now stored when it does (the store re-reads it), else null. */
  answerEnded(final: Message): Promise<Message[] | null>;
  /** Show the version `siblingId` of a turn: the conversation as stored and, when the backend
   * holds the tree (it sends one branch at a time), the messages of the branch now on screen. */
  showBranch(conversation: Conversation, siblingId: string, tree: MessageMap): Promise<BranchShown>;
  /** Change a summary checkpoint's text (the next answer starts from it). */
  editSummary(conversationId: string, messageId: string, content: string): Promise<Message>;
  /** The conversation as JSON (the whole tree, importable) or Markdown (the branch on screen). */
  exportConversation(id: string, format: ExportFormat): Promise<ExportFile>;
  /** A JSON export (or a plain {title, messages: [{role, content}]}) as a new conversation;
   * `fallbackModel` when the file names none (the server uses its own default). */
  importConversation(data: unknown, fallbackModel: string): Promise<Imported>;
}
