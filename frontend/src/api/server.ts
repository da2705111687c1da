/**
 * Server mode: conversations under /api (PRODUCT §3), generation owned by the server and followed
 * over SSE (`GET /api/generations/{id}/events`, resumed with Last-Event-ID). Chosen when
 * GET /api/me answers 200. All /api payload mapping lives in this file.
 */

import { toAttachment, toCitation, toStoredFile } from "./files";
import { errorMessage, parseUsage } from "./openai";
import { ChatSocket } from "./socket";
import { readSse, SseParser, type SseEvent } from "./sse";
import { exportFilename, paramsJson } from "./transfer";
import type {
  AnswerRef,
  BranchShown,
  ChatBackend,
  ChatSettings,
  ContextInfo,
  Conversation,
  ConversationPatch,
  ExportFile,
  ExportFormat,
  Imported,
  GenerationResult,
  GenerationSink,
  LiveEvent,
  Message,
  MessageStatus,
  Role,
  RunningGeneration,
  SearchHit,
  SendRequest,
  StartedGeneration,
  Usage,
} from "./types";

type Json = Record<string, unknown>;

const str = (v: unknown, d = ""): string => (typeof v === "string" ? v : d);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
/** An id as the server sent it (string or number); `fallback` when absent. */
const idOf = (v: unknown, fallback: string): string =>
  typeof v === "string" ? v : typeof v === "number" ? String(v) : fallback;
const obj = (v: unknown): Json => (v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const ids = (v: unknown): string[] => (Array.isArray(v) ? v.map((x) => idOf(x, "")).filter(Boolean) : []);

function time(v: unknown): number {
  if (typeof v === "number") return v < 1e12 ? v * 1000 : v;
  if (typeof v === "string") {
    // The API's datetimes are UTC; a naive ISO string is read as UTC too.
    const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v}Z`);
    if (!Number.isNaN(t)) return t;
  }
  return Date.now();
}

function list(body: unknown, key = "data"): Json[] {
  if (Array.isArray(body)) return body as Json[];
  const o = obj(body);
  return Array.isArray(o[key]) ? (o[key] as Json[]) : [];
}

const STATUSES: readonly MessageStatus[] = ["streaming", "done", "stopped", "error"];
const ROLES: readonly Role[] = ["system", "user", "assistant", "summary"];

export function toConversation(o: Json): Conversation {
  const params = obj(o.params);
  const settings: ChatSettings = {
    model: str(o.model),
    systemPrompt: str(o.system_prompt),
    temperature: num(params.temperature),
    maxTokens: num(params.max_tokens),
  };
  const leaf = o.active_leaf_id;
  return {
    id: idOf(o.id, ""),
    title: str(o.title),
    pinned: Boolean(o.pinned),
    createdAt: time(o.created_at),
    updatedAt: time(o.updated_at ?? o.created_at),
    settings,
    leafId: leaf === null || leaf === undefined ? null : idOf(leaf, "") || null,
  };
}

/** A count the server sent (`sent_count`…), else the length of the id list older records carry. */
function count(n: unknown, list: unknown): number {
  const v = num(n);
  return v !== null && v >= 0 ? Math.floor(v) : ids(list).length;
}

/**
 * An answer's context record. The conversation carries counts (`sent_count`, `dropped_count`,
 * `summarised_count`, `first_sent_id`); records from before those, and the full record of
 * GET .../messages/{id}/context, carry the id lists (`sent`, `dropped`, `summarised`).
 */
export function toContext(v: unknown): ContextInfo | undefined {
  if (!v || typeof v !== "object") return undefined;
  const c = v as Json;
  const out: ContextInfo = {
    sent: count(c.sent_count, c.sent),
    dropped: count(c.dropped_count, c.dropped),
    summarised: count(c.summarised_count, c.summarised),
    summaryId: c.summary_id === null || c.summary_id === undefined ? null : idOf(c.summary_id, "") || null,
  };
  const first = c.first_sent_id === undefined ? ids(c.sent)[0] : idOf(c.first_sent_id, "");
  if (first) out.firstSentId = first;
  const window = num(c.window);
  if (window !== null && window > 0) out.window = window;
  const budget = num(c.budget);
  if (budget !== null && budget > 0) out.budget = budget;
  const estimate = num(c.prompt_tokens_estimate);
  if (estimate !== null && estimate > 0) out.promptEstimate = estimate;
  return out;
}

export function toMessage(o: Json, conversationId: string): Message {
  const role = str(o.role, "assistant") as Role;
  const status = str(o.status, "done") as MessageStatus;
  const m: Message = {
    id: idOf(o.id, ""),
    conversationId: idOf(o.conversation_id, conversationId),
    parentId: idOf(o.parent_id, "") || null,
    role: ROLES.includes(role) ? role : "assistant",
    content: str(o.content),
    status: STATUSES.includes(status) ? status : "done",
    createdAt: time(o.created_at),
  };
  if (typeof o.reasoning === "string" && o.reasoning) m.reasoning = o.reasoning;
  const usage = parseUsage(o.usage);
  if (usage) m.usage = usage;
  if (typeof o.model === "string") m.model = o.model;
  if (typeof o.error === "string" && o.error) m.error = o.error;
  if (typeof o.generation_id === "string" && o.generation_id) m.generationId = o.generation_id;
  const siblings = ids(o.sibling_ids);
  if (siblings.length > 1) m.siblingIds = siblings;
  const context = toContext(o.context);
  if (context) m.context = context;
  if (Array.isArray(o.attachments) && o.attachments.length) m.attachments = o.attachments.map((a) => toAttachment(obj(a)));
  if (Array.isArray(o.citations) && o.citations.length) m.citations = o.citations.map((c) => toCitation(obj(c)));
  return m;
}

/** What one event of /api/generations/{id}/events means for the UI. */
export interface GenerationEvent {
  reasoning?: string;
  content?: string;
  /** Replace everything so far (a generation served from the database). */
  snapshot?: { content: string; reasoning: string };
  usage?: Usage;
  end?: GenerationResult;
}

/**
 * Events are JSON objects with a `type`: `start`, `context`, `delta` ({content, reasoning}),
 * `snapshot` ({message}), `done` ({status, usage, error}).
 */
export function interpretEvent(ev: SseEvent): GenerationEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(ev.data);
  } catch {
    return {};
  }
  return interpretPayload(obj(parsed));
}

/** One event's JSON object (an SSE event's data, or a WebSocket frame). */
export function interpretPayload(o: Json): GenerationEvent {
  switch (str(o.type)) {
    case "delta": {
      const out: GenerationEvent = {};
      if (typeof o.content === "string" && o.content) out.content = o.content;
      if (typeof o.reasoning === "string" && o.reasoning) out.reasoning = o.reasoning;
      return out;
    }
    case "snapshot": {
      const m = obj(o.message);
      return { snapshot: { content: str(m.content), reasoning: str(m.reasoning) } };
    }
    case "done": {
      const s = str(o.status, "done");
      const status: GenerationResult["status"] = s === "stopped" || s === "error" ? s : "done";
      const out: GenerationEvent = { end: { status } };
      const err = o.error;
      if (status === "error") {
        out.end = { status, error: typeof err === "string" ? err : str(obj(err).message, "error") };
      }
      const usage = parseUsage(o.usage);
      if (usage) out.usage = usage;
      return out;
    }
    case "error":
      return { end: { status: "error", error: str(o.message, str(obj(o.error).message, "error")) } };
    default:
      return {};
  }
}

async function api(path: string, init: RequestInit = {}): Promise<unknown> {
  // X-Requested-With: the server's CSRF guard wants it (or a JSON body) on state changes.
  const headers: Record<string, string> = { Accept: "application/json", "X-Requested-With": "chatgate" };
  if (init.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { credentials: "same-origin", ...init, headers });
  if (!res.ok) throw new Error(await errorMessage(res));
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? (JSON.parse(text) as unknown) : null;
}

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms);
  });

/** Follow a generation's events to the end, resuming with Last-Event-ID after a dropped connection. */
export async function followGeneration(
  id: string,
  sink: GenerationSink,
  signal: AbortSignal,
  retries = 8,
  after = 0,
): Promise<GenerationResult> {
  const parser = new SseParser();
  if (after > 0) parser.lastEventId = String(after);
  const st: { end: GenerationResult | null } = { end: null };
  // Read through a function: st.end is written by the event callback, out of narrowing's sight.
  const ended = (): GenerationResult | null => st.end;
  for (let attempt = 0; attempt <= retries && !ended(); attempt++) {
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      if (parser.lastEventId) headers["Last-Event-ID"] = parser.lastEventId;
      const res = await fetch(`/api/generations/${encodeURIComponent(id)}/events`, {
        headers,
        credentials: "same-origin",
        signal,
      });
      if (!res.ok || !res.body) return { status: "error", error: await errorMessage(res) };
      await readSse(
        res.body,
        (ev) => {
          if (st.end) return;
          st.end = applyEvent(interpretEvent(ev), sink);
        },
        parser,
      );
    } catch (e) {
      if (signal.aborted) return { status: "stopped" };
      if (attempt === retries) return { status: "error", error: e instanceof Error ? e.message : String(e) };
    }
    if (!ended()) await sleep(Math.min(250 * 2 ** attempt, 4000));
  }
  return ended() ?? { status: "error", error: "The answer stream ended early." };
}

/** Apply one generation event to the sink; the result once it is the last. */
function applyEvent(e: GenerationEvent, sink: GenerationSink): GenerationResult | null {
  if (e.snapshot) sink.replace(e.snapshot.content, e.snapshot.reasoning);
  if (e.reasoning) sink.reasoning(e.reasoning);
  if (e.content) sink.content(e.content);
  if (e.usage) sink.usage(e.usage);
  return e.end ?? null;
}

/**
 * Follow a generation over the page's WebSocket; over SSE from the last event seen if the
 * socket turns out unusable (a proxy without WebSockets).
 */
export function followOverSocket(
  socket: ChatSocket,
  id: string,
  sink: GenerationSink,
  signal: AbortSignal,
): Promise<GenerationResult> {
  return new Promise((resolve) => {
    let seen = 0;
    let settled = false;
    const finish = (result: GenerationResult): void => {
      if (settled) return;
      settled = true;
      leave();
      resolve(result);
    };
    const leave = socket.follow(id, (ev) => {
      if (ev.type === "socket-unusable") {
        settled = true;
        leave();
        void followGeneration(id, sink, signal, 8, seen).then(resolve);
        return;
      }
      if (typeof ev.seq === "number") seen = ev.seq;
      const end = applyEvent(interpretPayload(ev), sink);
      if (end) finish(end);
    });
    signal.addEventListener("abort", () => {
      finish({ status: "stopped" });
    });
  });
}

/** What the server tells every tab of the user (GET /api/events, or "watch" on /api/ws). */
export function toLiveEvent(ev: Json): LiveEvent | null {
  const type = str(ev.type);
  const conversationId = idOf(ev.conversation_id, "");
  if (type === "resync") return { kind: "resync" };
  if (type === "file" && ev.file && typeof ev.file === "object") return { kind: "file", file: toStoredFile(obj(ev.file)) };
  if (type === "conversation" && conversationId) {
    const action = str(ev.action);
    if (action === "created" || action === "updated" || action === "deleted") {
      return { kind: "conversation", action, conversationId };
    }
  }
  if (type === "generation" && str(ev.action) === "started" && conversationId) {
    return {
      kind: "started",
      conversationId,
      generationId: idOf(ev.generation_id, ""),
      messageId: idOf(ev.message_id, ""),
    };
  }
  return null;
}

function settingsBody(s: ChatSettings): Json {
  const out: Json = { system_prompt: s.systemPrompt || null, params: paramsJson(s) };
  if (s.model) out.model = s.model;
  return out;
}

/** Where the events of an answer nobody shows go (more answers than sinks). */
const NULL_SINK: GenerationSink = {
  reasoning: () => undefined,
  content: () => undefined,
  usage: () => undefined,
  replace: () => undefined,
};

export class ServerBackend implements ChatBackend {
  readonly mode = "server" as const;
  readonly acceptsFiles = true;
  /** One WebSocket for the page, opened on first use; SSE where WebSockets do not work. */
  private socket: ChatSocket | null = null;

  private liveSocket(): ChatSocket | null {
    if (typeof WebSocket === "undefined") return null;
    this.socket ??= new ChatSocket();
    return this.socket.usable ? this.socket : null;
  }

  watch(listener: (event: LiveEvent) => void): () => void {
    const socket = this.liveSocket();
    if (!socket) return () => undefined;
    return socket.watch((ev) => {
      const live = toLiveEvent(ev);
      if (live) listener(live);
    });
  }

  async listConversations(): Promise<Conversation[]> {
    return list(await api("/api/conversations?limit=1000")).map(toConversation);
  }

  async createConversation(settings: ChatSettings, title = ""): Promise<Conversation> {
    const body = await api("/api/conversations", {
      method: "POST",
      body: JSON.stringify({ title, ...settingsBody(settings) }),
    });
    return toConversation(obj(body));
  }

  async updateConversation(id: string, patch: ConversationPatch): Promise<Conversation> {
    const body: Json = {};
    if (patch.title !== undefined) body.title = patch.title;
    if (patch.pinned !== undefined) body.pinned = patch.pinned;
    if (patch.leafId !== undefined && patch.leafId !== null) body.active_leaf_id = patch.leafId;
    if (patch.settings) {
      const full = settingsBody({ model: "", systemPrompt: "", temperature: null, maxTokens: null, ...patch.settings });
      if (patch.settings.model !== undefined) body.model = full.model;
      if (patch.settings.systemPrompt !== undefined) body.system_prompt = full.system_prompt;
      // params is replaced whole: the store passes complete settings.
      if (patch.settings.temperature !== undefined || patch.settings.maxTokens !== undefined) {
        body.params = full.params;
      }
    }
    const out = await api(`/api/conversations/${encodeURIComponent(id)}`, {
      method: "PATCH",
      body: JSON.stringify(body),
    });
    return toConversation(obj(out));
  }

  async deleteConversation(id: string): Promise<void> {
    await api(`/api/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  /** The active branch (with summaries and each turn's sibling ids): the server keeps the tree. */
  async loadMessages(id: string): Promise<Message[]> {
    const body = await api(`/api/conversations/${encodeURIComponent(id)}`);
    return list(body, "messages").map((m) => toMessage(m, id));
  }

  async search(query: string): Promise<SearchHit[]> {
    const body = await api(`/api/search?q=${encodeURIComponent(query)}`);
    return list(body).map((h) => ({
      conversationId: idOf(h.conversation_id, ""),
      messageId: idOf(h.message_id, "") || null,
      title: str(h.title ?? h.conversation_title),
      snippet: str(h.snippet ?? h.content),
    }));
  }

  async send(request: SendRequest, sinks: readonly GenerationSink[]): Promise<StartedGeneration> {
    const { conversation } = request;
    const body: Json = {};
    if (request.regenerateOf !== undefined) body.regenerate_of = request.regenerateOf;
    else if (request.editOf !== undefined) {
      body.edit_of = request.editOf;
      body.content = request.content;
    } else {
      body.content = request.content;
      body.parent_id = request.parentId;
    }
    if (request.models?.length) body.models = request.models;
    if (request.attachments?.length) body.attachments = request.attachments.map((a) => a.id);
    const out = obj(
      await api(`/api/conversations/${encodeURIComponent(conversation.id)}/messages`, {
        method: "POST",
        body: JSON.stringify(body),
      }),
    );
    const now = Date.now();
    const userId = idOf(out.user_message_id, "");
    const userMessage: Message | null =
      request.content === null || !userId
        ? null
        : {
            id: userId,
            conversationId: conversation.id,
            parentId: request.parentId,
            role: "user",
            content: request.content,
            status: "done",
            createdAt: now,
            ...(request.attachments?.length ? { attachments: request.attachments } : {}),
          };
    const parentId = idOf(out.parent_id, "") || (userMessage ? userMessage.id : request.parentId);
    // One generation per answer (side by side: per model); older servers name just one.
    const listed = Array.isArray(out.generations) ? out.generations.map(obj) : [];
    const gens = listed.length
      ? listed.map((g) => ({ id: idOf(g.id, ""), messageId: idOf(g.message_id, ""), model: str(g.model) }))
      : [{ id: idOf(out.generation_id, ""), messageId: idOf(out.message_id, ""), model: conversation.settings.model }];
    const answers = gens.map((g, i) => {
      const assistant: Message = {
        id: g.messageId || `a-${g.id}`,
        conversationId: conversation.id,
        parentId,
        role: "assistant",
        content: "",
        status: "streaming",
        model: g.model || conversation.settings.model,
        generationId: g.id,
        createdAt: now + 1 + i,
      };
      const sink = sinks[i];
      return { assistant, ...(sink ? this.follow(g.id, sink) : this.follow(g.id, NULL_SINK)) };
    });
    return { userMessage, answers };
  }

  /** A sibling answer (side by side) by its generation: the server answers its message. */
  async loadAnswer(conversationId: string, ref: AnswerRef): Promise<Message> {
    if (!ref.generationId) throw new Error(`answer ${ref.id} has no generation`);
    const out = obj(await api(`/api/generations/${encodeURIComponent(ref.generationId)}`));
    return toMessage({ ...obj(out.message), generation_id: ref.generationId }, conversationId);
  }

  resume(message: Message, sink: GenerationSink): RunningGeneration | null {
    return message.generationId ? this.follow(message.generationId, sink) : null;
  }

  /** Follow a generation from its first event (everything so far, then the rest). */
  private follow(genId: string, sink: GenerationSink): RunningGeneration {
    const controller = new AbortController();
    const socket = this.liveSocket();
    return {
      done: socket
        ? followOverSocket(socket, genId, sink, controller.signal)
        : followGeneration(genId, sink, controller.signal),
      stop: () => {
        // The server cancels the upstream call and ends the event stream with "stopped";
        // if it cannot be reached, stop following anyway.
        api(`/api/generations/${encodeURIComponent(genId)}/stop`, { method: "POST" }).catch(() => {
          controller.abort();
        });
        setTimeout(() => {
          controller.abort();
        }, 5000);
      },
    };
  }

  /** The server moved its active leaf (and titles the chat) when it started the answer. */
  answerStarted(): Promise<null> {
    return Promise.resolve(null);
  }

  /** The server owns and stores generations: the branch is re-read as it now stands. */
  async answerEnded(final: Message): Promise<Message[]> {
    return this.loadMessages(final.conversationId);
  }

  /** The server holds the tree: point the conversation at the sibling; it answers that branch. */
  async showBranch(conversation: Conversation, siblingId: string): Promise<BranchShown> {
    const out = await api(`/api/conversations/${encodeURIComponent(conversation.id)}`, {
      method: "PATCH",
      body: JSON.stringify({ active_leaf_id: siblingId }),
    });
    const stored = toConversation(obj(out));
    const branch = list(out, "messages").map((m) => toMessage(m, conversation.id));
    const leaf = [...branch].reverse().find((m) => m.role !== "summary");
    return { conversation: leaf ? { ...stored, leafId: leaf.id } : stored, branch };
  }

  async editSummary(conversationId: string, messageId: string, content: string): Promise<Message> {
    const path = `/api/conversations/${encodeURIComponent(conversationId)}/messages/${encodeURIComponent(messageId)}`;
    const out = await api(path, { method: "PATCH", body: JSON.stringify({ content }) });
    return toMessage(obj(out), conversationId);
  }

  async exportConversation(id: string, format: ExportFormat): Promise<ExportFile> {
    const res = await fetch(`/api/conversations/${encodeURIComponent(id)}/export?format=${format}`, {
      credentials: "same-origin",
      headers: { Accept: format === "json" ? "application/json" : "text/markdown" },
    });
    if (!res.ok) throw new Error(await errorMessage(res));
    const named = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") ?? "")?.[1];
    return {
      filename: named ?? exportFilename(id, format),
      mimeType: res.headers.get("content-type") ?? "application/octet-stream",
      text: await res.text(),
    };
  }

  /** The server gives the file new ids and opens its active branch. */
  async importConversation(data: unknown): Promise<Imported> {
    const out = obj(await api("/api/conversations/import", { method: "POST", body: JSON.stringify(data) }));
    const conversation = toConversation(out);
    return { conversation, messages: list(out, "messages").map((m) => toMessage(m, conversation.id)) };
  }
}
