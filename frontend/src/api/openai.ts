/** The OpenAI-compatible endpoints the UI uses directly: /v1/models and streamed /v1/chat/completions. */

import { readSse } from "./sse";
import type { ChatSettings, GenerationResult, GenerationSink, Message, Usage } from "./types";

export interface ModelInfo {
  id: string;
  ownedBy?: string;
  /** chatgate lists it when known (configured, or the bundled model's n_ctx). */
  contextWindow?: number;
  /** false: the model cannot see images (chatgate's capabilities.vision); unknown: absent. */
  vision?: boolean;
}

export async function listModels(signal?: AbortSignal): Promise<ModelInfo[]> {
  const res = await fetch("/v1/models", { signal: signal ?? null, headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(await errorMessage(res));
  const body = (await res.json()) as {
    data?: { id?: unknown; owned_by?: unknown; context_window?: unknown; capabilities?: unknown }[];
  };
  const out: ModelInfo[] = [];
  for (const m of body.data ?? []) {
    if (typeof m.id !== "string") continue;
    // chatgate marks embedding-only models (the bundled `local-embed`): they cannot chat
    if (Array.isArray(m.capabilities) && !m.capabilities.includes("chat")) continue;
    const info: ModelInfo = { id: m.id };
    if (typeof m.owned_by === "string") info.ownedBy = m.owned_by;
    const w = m.context_window;
    if (typeof w === "number" && Number.isFinite(w) && w > 0) info.contextWindow = w;
    const caps = m.capabilities;
    if (caps && typeof caps === "object" && !Array.isArray(caps) && "vision" in caps) {
      info.vision = (caps as { vision?: unknown }).vision === true;
    }
    out.push(info);
  }
  return out;
}

/** The chat-completions messages for a branch: system prompt first, then the turns. */
export function buildMessages(
  settings: ChatSettings,
  history: readonly Pick<Message, "role" | "content">[],
): { role: string; content: string }[] {
  const out: { role: string; content: string }[] = [];
  if (settings.systemPrompt.trim()) out.push({ role: "system", content: settings.systemPrompt });
  for (const m of history) {
    if (m.role === "system") continue;
    out.push({ role: m.role, content: m.content });
  }
  return out;
}

export function requestBody(
  settings: ChatSettings,
  history: readonly Pick<Message, "role" | "content">[],
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: settings.model,
    messages: buildMessages(settings, history),
    stream: true,
    stream_options: { include_usage: true },
  };
  if (settings.temperature !== null) body.temperature = settings.temperature;
  if (settings.maxTokens !== null) body.max_tokens = settings.maxTokens;
  return body;
}

/** One parsed `chat.completion.chunk` (or error event), reduced to what the UI shows. */
export interface ChunkParts {
  content?: string;
  reasoning?: string;
  usage?: Usage;
  finishReason?: string;
  error?: string;
}

export function parseUsage(raw: unknown): Usage | undefined {
  if (!raw || typeof raw !== "object") return undefined;
  const u = raw as Record<string, unknown>;
  const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  const usage: Usage = {
    promptTokens: num(u.prompt_tokens),
    completionTokens: num(u.completion_tokens),
    totalTokens: num(u.total_tokens) || num(u.prompt_tokens) + num(u.completion_tokens),
  };
  const details = u.completion_tokens_details;
  if (details && typeof details === "object") {
    const r = (details as Record<string, unknown>).reasoning_tokens;
    if (typeof r === "number") usage.reasoningTokens = r;
  }
  return usage;
}

export function parseChunk(data: string): ChunkParts | null {
  let obj: unknown;
  try {
    obj = JSON.parse(data);
  } catch {
    return null;
  }
  if (!obj || typeof obj !== "object") return null;
  const o = obj as Record<string, unknown>;
  const parts: ChunkParts = {};
  if (o.error !== undefined && o.error !== null) {
    const e = o.error as Record<string, unknown> | string;
    parts.error =
      typeof e === "string" ? e : typeof e.message === "string" ? e.message : "Upstream error";
    return parts;
  }
  const choices = Array.isArray(o.choices) ? (o.choices as Record<string, unknown>[]) : [];
  const choice = choices[0];
  if (choice) {
    const delta = (choice.delta ?? {}) as Record<string, unknown>;
    if (typeof delta.content === "string" && delta.content) parts.content = delta.content;
    const reasoning = delta.reasoning_content ?? delta.reasoning;
    if (typeof reasoning === "string" && reasoning) parts.reasoning = reasoning;
    if (typeof choice.finish_reason === "string") parts.finishReason = choice.finish_reason;
  }
  const usage = parseUsage(o.usage);
  if (usage) parts.usage = usage;
  return parts;
}

export async function errorMessage(res: Response): Promise<string> {
  let text = "";
  try {
    text = await res.text();
    const body = JSON.parse(text) as { error?: { message?: unknown } | string; detail?: unknown };
    if (typeof body.error === "string") return body.error;
    if (body.error && typeof body.error.message === "string") return body.error.message;
    if (typeof body.detail === "string") return body.detail;
  } catch {
    // not JSON: fall through to the status line
  }
  return `HTTP ${res.status}${text && text.length < 200 ? `: ${text}` : ""}`;
}

function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === "AbortError";
}

/**
 * Stream one answer from /v1/chat/completions into the sink. Resolves with how it ended:
 * "done", "stopped" (the signal aborted) or "error" (HTTP error, error event, or a stream that
 * ended without [DONE]).
 */
export async function streamChat(
  body: Record<string, unknown>,
  sink: GenerationSink,
  signal: AbortSignal,
): Promise<GenerationResult> {
  let res: Response;
  try {
    res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (isAbort(e)) return { status: "stopped" };
    return { status: "error", error: e instanceof Error ? e.message : String(e) };
  }
  if (!res.ok || !res.body) {
    return { status: "error", error: await errorMessage(res) };
  }
  // Written from the event callback: an object, so control-flow narrowing does not freeze it.
  const st: { finished: boolean; error: string | undefined } = { finished: false, error: undefined };
  try {
    await readSse(res.body, (ev) => {
      if (st.finished || st.error !== undefined) return;
      if (ev.data === "[DONE]") {
        st.finished = true;
        return;
      }
      const parts = parseChunk(ev.data);
      if (!parts) return;
      if (parts.error !== undefined) {
        st.error = parts.error;
        return;
      }
      if (parts.reasoning) sink.reasoning(parts.reasoning);
      if (parts.content) sink.content(parts.content);
      if (parts.usage) sink.usage(parts.usage);
    });
  } catch (e) {
    if (isAbort(e) || signal.aborted) return { status: "stopped" };
    return { status: "error", error: e instanceof Error ? e.message : String(e) };
  }
  if (st.error !== undefined) return { status: "error", error: st.error };
  if (!st.finished) {
    if (signal.aborted) return { status: "stopped" };
    return { status: "error", error: "The answer was cut off (the stream ended early)." };
  }
  return { status: "done" };
}
