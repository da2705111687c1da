/**
 * The fallback for a document chip's "Indexing…": the live channel (WebSocket or SSE) says when
 * a file is ready, but when it is down or missed that event the chip would wait forever. While a
 * file is indexing, its state is read again (GET /api/files/{id}) after a few seconds, then less
 * and less often (×1.5 up to 30 s), until it is ready or failed: whichever comes first, the live
 * event or the poll, settles it. A file that is gone (404) stops being watched; a failed read is
 * tried again later.
 */

import type { StoredFile } from "../api/files";

export interface IndexingHost {
  /** The file as the server has it now; null when it is gone. */
  fetchFile(id: string): Promise<StoredFile | null>;
  /** What this page knows of the file now (live events included). */
  current(id: string): StoredFile | undefined;
  /** A fresher state for the file. */
  changed(file: StoredFile): void;
}

export const FIRST_DELAY_MS = 3000;
export const MAX_DELAY_MS = 30000;
const BACKOFF = 1.5;

export class IndexingWatch {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(private readonly host: IndexingHost) {}

  /** Watch ``file`` while it is indexing (once per file however often it is handed in). */
  watch(file: StoredFile): void {
    if (file.status !== "indexing" || this.timers.has(file.id)) return;
    this.schedule(file.id, FIRST_DELAY_MS);
  }

  /** The ids being watched now. */
  watching(): string[] {
    return [...this.timers.keys()];
  }

  stopAll(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private schedule(id: string, delay: number): void {
    this.timers.set(
      id,
      setTimeout(() => {
        void this.check(id, delay);
      }, delay),
    );
  }

  private async check(id: string, delay: number): Promise<void> {
    if (this.current(id) !== "indexing") {
      this.timers.delete(id); // settled meanwhile (a live event)
      return;
    }
    let fresh: StoredFile | null | undefined;
    try {
      fresh = await this.host.fetchFile(id);
    } catch {
      fresh = undefined; // offline or a server hiccup: try again later
    }
    if (!this.timers.has(id)) return; // stopped meanwhile
    if (fresh === null) {
      this.timers.delete(id);
      return;
    }
    if (fresh && this.current(id) === "indexing") this.host.changed(fresh);
    if (fresh && fresh.status !== "indexing") {
      this.timers.delete(id);
      return;
    }
    this.schedule(id, Math.min(delay * BACKOFF, MAX_DELAY_MS));
  }

  private current(id: string): StoredFile["status"] | undefined {
    return this.host.current(id)?.status;
  }
}
