/**
 * Live updates in server mode: what another tab (or client) of the same user does shows here
 * at once — a chat created, renamed, pinned or deleted; an answer started in the chat on
 * screen is followed live, token by token. The server sends ids only (chat/events.py); this
 * re-reads what they name.
 */

import type { StoredFile } from "../api/files";
import type { LiveEvent } from "../api/types";

/** The parts of the chat store live updates act on. */
export interface LiveTarget {
  activeId(): string | null;
  /** The conversation has an answer this tab is showing live. */
  streamingIn(conversationId: string): boolean;
  /** Resolves once the sends this tab has in flight are answered. */
  settled(): Promise<void>;
  startedHere(messageId: string): boolean;
  refreshList(): Promise<void>;
  /** Re-read the conversation and follow its answer if one is being written. */
  reloadAndFollow(conversationId: string): Promise<void>;
  /** Deleted elsewhere: forget it (and leave it if it is on screen). */
  drop(conversationId: string): void;
  /** An uploaded file changed (indexing progress). */
  fileChanged(file: StoredFile): void;
}

export class LiveUpdates {
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly target: LiveTarget,
    private readonly delayMs = 150,
  ) {}

  handle(event: LiveEvent): void {
    void this.apply(event);
  }

  private async apply(event: LiveEvent): Promise<void> {
    const t = this.target;
    switch (event.kind) {
      case "resync": {
        this.refreshSoon();
        const active = t.activeId();
        if (active !== null && !t.streamingIn(active)) await t.reloadAndFollow(active);
        return;
      }
      case "conversation":
        if (event.action === "deleted") {
          t.drop(event.conversationId);
          return;
        }
        this.refreshSoon();
        if (
          event.action === "updated" &&
          event.conversationId === t.activeId() &&
          !t.streamingIn(event.conversationId)
        ) {
          await t.reloadAndFollow(event.conversationId); // a branch or summary changed elsewhere
        }
        return;
      case "file":
        t.fileChanged(event.file);
        return;
      case "started":
        await t.settled(); // an answer this tab asked for is announced too
        if (t.startedHere(event.messageId)) return;
        this.refreshSoon();
        if (event.conversationId === t.activeId()) await t.reloadAndFollow(event.conversationId);
        return;
    }
  }

  /** Several events in a row re-read the list once. */
  private refreshSoon(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.target.refreshList();
    }, this.delayMs);
  }
}
