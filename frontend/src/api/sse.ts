/**
 * Incremental Server-Sent Events parser (the WHATWG "event stream interpretation"), fed with
 * decoded text in arbitrary pieces, plus a reader over a fetch() body.
 *
 * fetch() rather than EventSource: POST bodies, AbortController for stop, and a Last-Event-ID
 * header we control when resuming.
 */

export interface SseEvent {
  /** The event's `id:` (or the last one seen, as the spec says); "" when none yet. */
  id: string;
  event: string;
  data: string;
  retry?: number;
}

export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private eventType = "";
  private hasData = false;
  private retry: number | undefined;
  /** Carries over between events, as EventSource's lastEventId does. */
  lastEventId = "";
  /** A "\r" ended the previous piece: a "\n" starting the next one belongs to it. */
  private pendingCR = false;

  /** Feed a piece of text; returns the events it completed. */
  push(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let start = 0;
    if (this.pendingCR && text.startsWith("\n")) start = 1;
    this.pendingCR = false;
    let buf = this.buffer + text.slice(start);
    let pos = 0;
    for (;;) {
      let end = -1;
      let next = -1;
      for (let i = pos; i < buf.length; i++) {
        const c = buf.charCodeAt(i);
        if (c === 10) {
          end = i;
          next = i + 1;
          break;
        }
        if (c === 13) {
          end = i;
          if (i + 1 < buf.length) {
            next = buf.charCodeAt(i + 1) === 10 ? i + 2 : i + 1;
          } else {
            next = i + 1;
            this.pendingCR = true;
          }
          break;
        }
      }
      if (end < 0) break;
      this.line(buf.slice(pos, end), out);
      pos = next;
    }
    buf = buf.slice(pos);
    this.buffer = buf;
    return out;
  }

  /** End of stream: an unterminated event is dropped, as the spec says. */
  end(): void {
    this.buffer = "";
    this.reset();
  }

  private reset(): void {
    this.data = [];
    this.eventType = "";
    this.hasData = false;
    this.retry = undefined;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === "") {
      if (this.hasData) {
        const ev: SseEvent = {
          id: this.lastEventId,
          event: this.eventType || "message",
          data: this.data.join("\n"),
        };
        if (this.retry !== undefined) ev.retry = this.retry;
        out.push(ev);
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        this.hasData = true;
        break;
      case "event":
        this.eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }
}

/** Read an SSE response body, calling onEvent for each event, until the body ends. */
export async function readSse(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: SseEvent) => void,
  parser: SseParser = new SseParser(),
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const ev of parser.push(decoder.decode(value, { stream: true }))) onEvent(ev);
    }
    for (const ev of parser.push(decoder.decode())) onEvent(ev);
  } finally {
    parser.end();
    reader.releaseLock();
  }
}
