/** The transfer slice: export and import a conversation, edit a summary checkpoint. */

import type { ExportFile, ExportFormat } from "../api/types";
import type { DataHost } from "./conversations";

export class TransferSlice {
  constructor(private readonly host: DataHost) {}

  /** Change a summary checkpoint's text in place (the next answer starts from it). */
  async editSummary(conversationId: string, messageId: string, content: string): Promise<boolean> {
    const h = this.host;
    try {
      const saved = await h.write(() => h.backend().editSummary(conversationId, messageId, content));
      h.putMessages(conversationId, [saved]);
      return true;
    } catch (e) {
      h.notify(e);
      return false;
    }
  }

  /** The open conversation as a file; null (with a notice) when it cannot be had. */
  async exportActive(format: ExportFormat): Promise<ExportFile | null> {
    const id = this.host.getState().activeId;
    if (id === null) return null;
    try {
      return await this.host.backend().exportConversation(id, format);
    } catch (e) {
      this.host.notify(e);
      return null;
    }
  }

  /** A parsed JSON export becomes a new conversation, and opens. */
  async importData(data: unknown): Promise<void> {
    const h = this.host;
    try {
      const model = h.getState().draft.model;
      const { conversation, messages } = await h.write(() => h.backend().importConversation(data, model));
      const all = new Map(h.getState().messages);
      all.set(conversation.id, new Map(messages.map((m) => [m.id, m])));
      h.set({ messages: all, activeId: conversation.id, focusMessageId: null });
      h.putConversation(conversation);
    } catch (e) {
      h.notify(e);
    }
  }
}
