/**
 * Where a streaming answer accumulates. Tokens are appended to a plain string; subscribers (only
 * the one component showing the answer) hear about it at most once per animation frame, and less
 * often when rendering a frame costs more than a frame (setRenderCost), so a fast stream never
 * re-renders per token and never re-renders the rest of the conversation at all.
 */

import type { GenerationSink, Usage } from "../api/types";

export type StreamPhase = "waiting" | "reasoning" | "answer";

export interface StreamSnapshot {
  readonly content: string;
  readonly reasoning: string;
  readonly usage: Usage | null;
  readonly phase: StreamPhase;
  /** Increases with every flush that changed something. */
  readonly version: number;
}

export type Scheduler = (callback: () => void) => void;

const frame: Scheduler = (cb) => {
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(() => { cb(); });
  else setTimeout(cb, 16);
};

const EMPTY: StreamSnapshot = { content: "", reasoning: "", usage: null, phase: "waiting", version: 0 };

export class StreamBuffer implements GenerationSink {
  private pendingContent = "";
  private pendingReasoning = "";
  private pendingUsage: Usage | null = null;
  private snapshot: StreamSnapshot = EMPTY;
  private readonly listeners = new Set<() => void>();
  private scheduled = false;
  private lastFlush = -Infinity;
  private minInterval = 0;
  private closed = false;
  private dirty = false;

  constructor(
    private readonly schedule: Scheduler = frame,
    private readonly now: () => number = () => performance.now(),
  ) {}

  reasoning(text: string): void {
    if (this.closed || !text) return;
    this.pendingReasoning += text;
    this.dirty = true;
    this.request();
  }

  content(text: string): void {
    if (this.closed || !text) return;
    this.pendingContent += text;
    this.dirty = true;
    this.request();
  }

  replace(content: string, reasoning: string): void {
    if (this.closed) return;
    this.snapshot = { ...this.snapshot, content: "", reasoning: "", phase: "waiting" };
    this.pendingContent = content;
    this.pendingReasoning = reasoning;
    this.dirty = true;
    this.request();
  }

  usage(usage: Usage): void {
    if (this.closed) return;
    this.pendingUsage = usage;
    this.dirty = true;
    this.request();
  }

  /**
   * Tell the buffer how long the last render of a snapshot took: frames are then spaced so
   * rendering uses at most about half of the time (long answers re-parse more Markdown).
   */
  setRenderCost(ms: number): void {
    this.minInterval = ms > 8 ? Math.min(ms * 2, 500) : 0;
  }

  /** Called by the subscriber once it has committed the latest snapshot (a layout effect). */
  rendered(): void {
    this.setRenderCost(this.now() - this.lastFlush);
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  readonly getSnapshot = (): StreamSnapshot => this.snapshot;

  /** Apply everything pending now (also used at the end of a stream) and notify if it changed. */
  flush(): StreamSnapshot {
    const s = this.snapshot;
    if (!this.dirty) return s;
    this.dirty = false;
    const content = s.content + this.pendingContent;
    const reasoning = s.reasoning + this.pendingReasoning;
    this.snapshot = {
      content,
      reasoning,
      usage: this.pendingUsage ?? s.usage,
      phase: content ? "answer" : reasoning ? "reasoning" : s.phase,
      version: s.version + 1,
    };
    this.pendingContent = "";
    this.pendingReasoning = "";
    this.pendingUsage = null;
    this.lastFlush = this.now();
    for (const l of this.listeners) l();
    return this.snapshot;
  }

  /** Final flush; later tokens (after stop) are ignored. */
  close(): StreamSnapshot {
    const s = this.flush();
    this.closed = true;
    return s;
  }

  private request(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(() => {
      this.tick();
    });
  }

  private tick(): void {
    this.scheduled = false;
    if (this.closed) return;
    if (this.now() - this.lastFlush < this.minInterval) {
      this.request();
      return;
    }
    this.flush();
  }
}
