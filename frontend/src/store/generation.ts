/**
 * The generation slice: send, edit and resend, regenerate, stop, and following an answer that
 * is being written (this tab's, or one found after a reload). A streaming answer does not go
 * through the state per token: it lives in a StreamBuffer only the streaming message reads.
 * The slice reaches the rest of the store only through GenerationHost.
 */

import type { Attachment } from "../api/files";
import type { Conversation, GenerationResult, Message, RunningGeneration } from "../api/types";
import { StreamBuffer } from "../lib/streamBuffer";
import { threadOf } from "../lib/tree";
import { forget, recall, remember } from "./compare";
import type { DataHost } from "./conversations";
import { EMPTY_MAP, titleFrom, type Comparison } from "./state";

/** The eight store internals generation touches. */
export interface GenerationHost extends DataHost {
  /** The branch the backend now holds replaces what is loaded (and the list is re-read). */
  applyBranch(conversationId: string, branch: readonly Message[]): Promise<void>;
}

interface Intent {
  editOf?: string;
  regenerateOf?: string;
  /** Side by side: one answer per model. */
  models?: string[];
  attachments?: Attachment[];
}

/** One answer running: its message, its run, and where its text accumulates. */
interface Run extends RunningGeneration {
  assistant: Message;
  buffer: StreamBuffer;
}

function finalMessage(assistant: Message, buffer: StreamBuffer, result: GenerationResult): Message {
  const snap = buffer.close();
  return {
    ...assistant,
    content: snap.content,
    status: result.status,
    ...(snap.reasoning ? { reasoning: snap.reasoning } : {}),
    ...(snap.usage ? { usage: snap.usage } : {}),
    ...(result.error !== undefined ? { error: result.error } : {}),
  };
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

  /** Send a new message at the end of the branch on screen (a new chat when none is open);
   * with 2–3 `models`, each answers it side by side. */
  async send(text: string, models: readonly string[] = [], attachments: readonly Attachment[] = []): Promise<void> {
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
    const intent: Intent = {
      ...(models.length > 1 ? { models: [...models] } : {}),
      ...(attachments.length ? { attachments: [...attachments] } : {}),
    };
    await this.generate(c, history, history[history.length - 1]?.id ?? null, content, intent);
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
    const cid = conversation.id;
    const models = intent.models ?? [];
    const buffers = (models.length ? models : [""]).map(() => new StreamBuffer());
    const request = { conversation, history, parentId, content, ...intent };
    const sending = backend.send(request, buffers);
    this.sending.push(sending);
    let started;
    try {
      started = await sending;
    } catch (e) {
      h.notify(e);
      return;
    } finally {
      this.sending = this.sending.filter((p) => p !== sending);
    }
    const { userMessage, answers } = started;
    const first = answers[0];
    if (!first) return;
    for (const a of answers) this.mine.add(a.assistant.id);
    h.putMessages(cid, [...(userMessage ? [userMessage] : []), ...answers.map((a) => a.assistant)]);
    // A new turn closes the comparison it continues from; a side-by-side send opens one.
    this.setComparison(
      cid,
      answers.length > 1 && userMessage
        ? { conversationId: cid, userMessageId: userMessage.id, answers: answers.map((a) => a.assistant) }
        : null,
    );
    const runs = answers.map((a, i) => ({ ...a, buffer: buffers[i] ?? new StreamBuffer() }));
    this.show(cid, runs);
    // The (first) new answer is the leaf at once; the backend records it (and a first title)
    // if it did not already.
    const now = this.conversation(cid);
    if (now) h.putConversation({ ...now, leafId: first.assistant.id, updatedAt: Date.now() });
    const titled = !history.length && conversation.title === "" && content !== null;
    void h
      .write(() => backend.answerStarted(cid, first.assistant.id, titled ? titleFrom(content) : null))
      .then((stored) => {
        if (stored) h.putConversation(stored, false);
      })
      .catch((e: unknown) => {
        h.notify(e);
      });
    await this.finish(cid, runs);
  }

  /** The answers being written in a conversation become the state's generation. */
  private show(conversationId: string, runs: readonly Run[]): void {
    this.host.set({
      generation: {
        conversationId,
        answers: runs.map((r) => ({ assistantId: r.assistant.id, buffer: r.buffer })),
        stop: () => {
          for (const r of runs) r.stop();
        },
      },
    });
  }

  /** Each answer ends on its own; once all have, the backend stores or re-reads them. */
  private async finish(conversationId: string, runs: readonly Run[]): Promise<void> {
    const h = this.host;
    const finals = await Promise.all(
      runs.map(async (r) => {
        const final = finalMessage(r.assistant, r.buffer, await r.done);
        h.putMessages(conversationId, [final]);
        this.updateComparison(final);
        return final;
      }),
    );
    h.set({ generation: null });
    let branch: Message[] | null = null;
    for (const final of finals) {
      try {
        branch = (await h.write(() => h.backend().answerEnded(final))) ?? branch;
      } catch (e) {
        h.notify(e);
      }
    }
    if (branch) await h.applyBranch(conversationId, branch);
  }

  /**
   * After a reload (or in a second tab): an open comparison is shown again, and every answer
   * still being written (on the branch, or in the comparison's columns) is followed live.
   */
  async resumeIfStreaming(conversationId: string): Promise<void> {
    const h = this.host;
    const c = this.conversation(conversationId);
    if (h.getState().generation || !c) return;
    const thread = this.thread(c);
    let candidates = thread.filter((m) => m.role === "assistant" && m.status === "streaming").slice(-1);
    const stored = recall(conversationId);
    if (stored && thread.some((m) => m.id === stored.userMessageId)) {
      const loaded = this.host.getState().messages.get(conversationId) ?? EMPTY_MAP;
      try {
        const answers = await Promise.all(
          stored.answers.map((ref) => {
            const known = loaded.get(ref.id);
            return known ? Promise.resolve(known) : h.backend().loadAnswer(conversationId, ref);
          }),
        );
        this.setComparison(conversationId, { conversationId, userMessageId: stored.userMessageId, answers });
        candidates = answers.filter((m) => m.status === "streaming");
      } catch {
        this.setComparison(conversationId, null); // gone (deleted elsewhere): columns close
      }
    }
    if (h.getState().generation) return;
    const runs: Run[] = [];
    for (const live of candidates) {
      const buffer = new StreamBuffer();
      const run = h.backend().resume(live, buffer);
      if (run) runs.push({ ...run, assistant: live, buffer });
    }
    if (!runs.length) return;
    this.show(conversationId, runs);
    await this.finish(conversationId, runs);
  }

  // ---- side by side ------------------------------------------------------------------------
  private setComparison(conversationId: string, c: Comparison | null): void {
    const all = new Map(this.host.getState().comparisons);
    if (c) {
      all.set(conversationId, c);
      remember(c);
    } else {
      if (!all.has(conversationId)) return;
      all.delete(conversationId);
      forget(conversationId);
    }
    this.host.set({ comparisons: all });
  }

  private updateComparison(final: Message): void {
    const c = this.host.getState().comparisons.get(final.conversationId);
    if (!c?.answers.some((m) => m.id === final.id)) return;
    const answers = c.answers.map((m) => (m.id === final.id ? { ...m, ...final } : m));
    const all = new Map(this.host.getState().comparisons);
    all.set(final.conversationId, { ...c, answers });
    this.host.set({ comparisons: all });
  }

  /** The columns close; the answer shown on the branch is the one the caller switches to. */
  closeComparison(conversationId: string): void {
    this.setComparison(conversationId, null);
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
