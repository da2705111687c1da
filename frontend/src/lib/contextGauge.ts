/**
 * How full the model's context window is: the newest answer's prompt (the upstream's reported
 * usage.prompt_tokens, else the server's own estimate) against the window (the server's record
 * for that answer, else the window /v1/models lists for its model). Null when either is unknown:
 * the gauge is then hidden rather than guessed.
 */

import type { Message } from "../api/types";

export type GaugeLevel = "ok" | "high" | "full";

export interface Gauge {
  /** Prompt tokens of the newest answer. */
  used: number;
  window: number;
  /** What the prompt may use: the window minus the reply's reserve (server mode). */
  budget: number | null;
  /** 0..1, for drawing. */
  ratio: number;
  /** Rounded, may pass 100 when a prompt overflowed. */
  percent: number;
  level: GaugeLevel;
  /** `used` is the server's count, not the upstream's. */
  estimated: boolean;
  dropped: number;
  summarised: number;
  model: string | null;
}

export const HIGH = 0.7;
export const FULL = 0.9;

/** The newest finished answer that says how big its prompt was. */
export function measuredAnswer(thread: readonly Message[]): Message | null {
  for (let i = thread.length - 1; i >= 0; i--) {
    const m = thread[i];
    if (!m || m.role !== "assistant" || m.status === "streaming") continue;
    if ((m.usage?.promptTokens ?? 0) > 0 || (m.context?.promptEstimate ?? 0) > 0) return m;
  }
  return null;
}

export function contextGauge(
  thread: readonly Message[],
  windowOf: (model: string) => number | undefined,
): Gauge | null {
  const m = measuredAnswer(thread);
  if (!m) return null;
  const reported = m.usage?.promptTokens ?? 0;
  const used = reported > 0 ? reported : (m.context?.promptEstimate ?? 0);
  const window = m.context?.window ?? (m.model ? windowOf(m.model) : undefined);
  if (!window || window <= 0 || used <= 0) return null;
  const share = used / window;
  return {
    used,
    window,
    budget: m.context?.budget ?? null,
    ratio: Math.min(share, 1),
    percent: Math.round(share * 100),
    level: share >= FULL ? "full" : share >= HIGH ? "high" : "ok",
    estimated: reported <= 0,
    dropped: m.context?.dropped ?? 0,
    summarised: m.context?.summarised ?? 0,
    model: m.model ?? null,
  };
}

export interface TrimMarker {
  /** The message the marker goes above (the summary standing for the turns, if it is there). */
  beforeId: string;
  dropped: number;
  summarised: number;
  summaryId: string | null;
}

/**
 * Where the newest answer's context began: the first message it sent in full, or the summary
 * checkpoint right above that message. Null when nothing was left out.
 */
export function trimMarker(thread: readonly Message[]): TrimMarker | null {
  for (let i = thread.length - 1; i >= 0; i--) {
    const m = thread[i];
    const c = m?.context;
    if (!m || m.role !== "assistant" || !c) continue;
    if (c.dropped + c.summarised === 0 || !c.firstSentId) return null;
    const at = thread.findIndex((x) => x.id === c.firstSentId);
    if (at < 0) return null;
    const above = thread[at - 1];
    const beforeId = above?.role === "summary" ? above.id : c.firstSentId;
    return { beforeId, dropped: c.dropped, summarised: c.summarised, summaryId: c.summaryId };
  }
  return null;
}
