/**
 * The generation slice: send, edit and resend, regenerate, stop, and following an answer that
 * is being written (this tab's, or one found after a reload). A streaming answer does not go
 * through the state per token: it lives in a StreamBuffer only the streaming message reads.
 * The slice reaches the rest of the store only through GenerationHost.
 */

import type { Conversation, GenerationResult, Message } from "../api/types";
import { StreamBuffer } from "../lib/streamBuffer";
import { threadOf } from "../lib/tree";
import type { DataHost } from "./conversations";
import { EMPTY_MAP, titleFrom } from "./state";

/** The eight store internals generation touches. */
export interface GenerationHost extends DataHost {
  /** The branch the backend now holds replaces what is loaded (and the list is re-read). */
  applyBranch(conversationId: string, branch: readonly Message[]): Promise<void>;
}

interface Intent {
  editOf?: string;
  regenerateOf?: string;
}

export class GenerationSlice {
  /** Sends not yet answered by the backend, and the answers this tab started (live updates). */
  private sending: Promise<unknown>[] = [];
  private readonly mine = new Set<string>();

  constructor(private readonly host: GenerationHost) {}

  private conversation(id: string | null): Conversation | null {
    return id === null ? null : (this.host.getState().conversations.find((c) => c.id === id) ?? null);
  }

  private thread(c: Conversation): Message[] {
    return threadOf(this.host.getState().messages.get(c.id) ?? EMPTY_MAP, c.leafId);
  }

  /** Send a new message at the end of the branch on screen (a new chat when none is open). */
  async send(text: string): Promise<void> {
    const h = this.host;
    const content = text.trim();
    const s = h.getState();
    if (!content || s.generation || s.status !== "ready") return;
    let c = this.conversation(s.activeId);
    if (!c) {
      try {
        const draft = s.draft;
        c = await h.write(() => h.backend().createConversation(draft, titleFrom(content)));
      } catch (e) {
        h.notify(e);
        return;
      }
      h.putConversation(c);
      const messages = new Map(h.getState().messages);
      messages.set(c.id, new Map());
      h.set({ activeId: c.id, messages });
    }
    const history = this.thread(c);
    await this.generate(c, history, history[history.length - 1]?.id ?? null, content);
  }

  /** A new answer to the user message before `assistantId`. */
  async regenerate(assistantId: string): Promise<void> {
    const c = this.conversation(this.host.getState().activeId);
    if (!c || this.host.getState().generation) return;
    const thread = this.thread(c);
    const at = thread.findIndex((m) => m.id === assistantId);
    const parent = thread[at - 1];
    if (at < 0 || !parent) return;
    await this.generate(c, thread.slice(0, at), parent.id, null, { regenerateOf: assistantId });
  }

  /** Replace a user message with new text (a new branch) and answer it. */
  async editAndResend(userMessageId: string, text: string): Promise<void> {
    const c = this.conversation(this.host.getState().activeId);
    const content = text.trim();
    if (!c || !content || this.host.getState().generation) return;
    const thread = this.thread(c);
    const at = thread.findIndex((m) => m.id === userMessageId);
    if (at < 0) return;
    const parentId = thread[at]?.parentId ?? null;
    await this.generate(c, thread.slice(0, at), parentId, content, { editOf: userMessageId });
  }

  stop(): void {
    this.host.getState().generation?.stop();
  }

  private async generate(
    conversation: Conversation,
    history: Message[],
    parentId: string | null,
    content: string | null,
    intent: Intent = {},
  ): Promise<void> {
    const h = this.host;
    const backend = h.backend();
    const buffer = new StreamBuffer();
    let started;
    const sending = backend.send({ conversation, history, parentId, content, ...intent }, buffer);
    this.sending.push(sending);
    try {
      started = await sending;
    } catch (e) {
      h.notify(e);
      return;
    } finally {
      this.sending = this.sending.filter((p) => p !== sending);
    }
    const { userMessage, assistant } = started;
    this.mine.add(assistant.id);
    h.putMessages(conversation.id, userMessage ? [userMessage, assistant] : [assistant]);
    h.set({
      generation: {
        conversationId: conversation.id,
        assistantId: assistant.id,
        buffer,
        stop: () => {
          started.stop();
        },
      },
    });
    // The new answer is the leaf at once; the backend records it (and a first title) if it
    // did not already.
    const now = this.conversation(conversation.id);
    if (now) h.putConversation({ ...now, leafId: assistant.id, updatedAt: Date.now() });
    const first = !history.length && conversation.title === "" && content !== null;
    void h
      .write(() => backend.answerStarted(conversation.id, assistant.id, first ? titleFrom(content) : null))
      .then((stored) => {
        if (stored) h.putConversation(stored, false);
      })
      .catch((e: unknown) => {
        h.notify(e);
      });

    await this.finish(assistant, buffer, await started.done);
  }

  /** An answer ended: keep what the buffer holds, then let the backend store or re-read it. */
  private async finish(assistant: Message, buffer: StreamBuffer, result: GenerationResult): Promise<void> {
    const h = this.host;
    const snap = buffer.close();
    const final: Message = {
      ...assistant,
      content: snap.content,
      status: result.status,
      ...(snap.reasoning ? { reasoning: snap.reasoning } : {}),
      ...(snap.usage ? { usage: snap.usage } : {}),
      ...(result.error !== undefined ? { error: result.error } : {}),
    };
    h.putMessages(assistant.conversationId, [final]);
    h.set({ generation: null });
    try {
      const branch = await h.write(() => h.backend().answerEnded(final));
      if (branch) await h.applyBranch(assistant.conversationId, branch);
    } catch (e) {
      h.notify(e);
    }
  }

  /** An answer still being written (reloaded page, second tab) is followed live. */
  resumeIfStreaming(conversationId: string): void {
    const h = this.host;
    const c = this.conversation(conversationId);
    if (h.getState().generation || !c) return;
    const live = this.thread(c).find((m) => m.role === "assistant" && m.status === "streaming");
    if (!live) return;
    const buffer = new StreamBuffer();
    const run = h.backend().resume(live, buffer);
    if (!run) return;
    h.set({
      generation: {
        conversationId,
        assistantId: live.id,
        buffer,
        stop: () => {
          run.stop();
        },
      },
    });
    void run.done.then((result) => this.finish(live, buffer, result));
  }

  // ---- what live updates ask ---------------------------------------------------------------
  streamingIn(conversationId: string): boolean {
    return this.host.getState().generation?.conversationId === conversationId;
  }

  async settled(): Promise<void> {
    await Promise.allSettled(this.sending);
  }

  startedHere(messageId: string): boolean {
    return this.mine.has(messageId);
  }
}
