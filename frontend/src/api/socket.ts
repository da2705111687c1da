/**
 * The chat's WebSocket (`/api/ws`): one socket per page carries every followed answer and the
 * user's events (another tab started an answer, renamed or deleted a chat).
 *
 * It reconnects by itself with backoff and, once back, re-subscribes each answer after the last
 * event seen (`after`: the server replays exactly the missing ones) and watches again. When the
 * socket cannot be opened at all (a proxy that drops WebSockets), `usable` turns false and the
 * caller follows answers over SSE instead.
 */

export type SocketEvent = Record<string, unknown> & { type?: unknown };

interface Follower {
  after: number;
  onEvent(ev: SocketEvent): void;
}

export interface SocketLike {
  readyState: number;
  onopen: ((this: SocketLike, ev: Event) => unknown) | null;
  onmessage: ((this: SocketLike, ev: MessageEvent) => unknown) | null;
  onclose: ((this: SocketLike, ev: CloseEvent) => unknown) | null;
  onerror: ((this: SocketLike, ev: Event) => unknown) | null;
  send(data: string): void;
  close(): void;
}

const OPEN = 1;
/** After this many failed opens in a row without ever connecting, give up on WebSockets. */
const GIVE_UP_AFTER = 3;

export function socketUrl(loc: Pick<Location, "protocol" | "host"> = window.location): string {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/api/ws`;
}

export class ChatSocket {
  private ws: SocketLike | null = null;
  private readonly followers = new Map<string, Follower>();
  private readonly watchers = new Set<(ev: SocketEvent) => void>();
  private failures = 0;
  private everOpen = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  /** False once the socket has failed to open GIVE_UP_AFTER times without ever working. */
  usable = true;

  constructor(
    private readonly open: () => SocketLike = () => new WebSocket(socketUrl()) as unknown as SocketLike,
    private readonly backoff = (n: number) => Math.min(250 * 2 ** n, 5000),
  ) {}

  /** Follow one answer: `onEvent` gets each of its events once, in order, across reconnects. */
  follow(generationId: string, onEvent: (ev: SocketEvent) => void, after = 0): () => void {
    this.followers.set(generationId, { after, onEvent });
    this.ensure();
    this.subscribe(generationId);
    return () => {
      this.followers.delete(generationId);
      this.post({ type: "unsubscribe", generation_id: generationId });
    };
  }

  /** Hear the user's events (`conversation`, `generation` started, `resync`). */
  watch(listener: (ev: SocketEvent) => void): () => void {
    this.watchers.add(listener);
    this.ensure();
    if (this.watchers.size === 1) this.post({ type: "watch" });
    return () => {
      this.watchers.delete(listener);
      if (this.watchers.size === 0) this.post({ type: "unwatch" });
    };
  }

  stopGeneration(generationId: string): boolean {
    return this.post({ type: "stop", generation_id: generationId });
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.ws?.close();
    this.ws = null;
  }

  private subscribe(generationId: string): void {
    const f = this.followers.get(generationId);
    if (f) this.post({ type: "subscribe", generation_id: generationId, after: f.after });
  }

  private post(message: Record<string, unknown>): boolean {
    if (this.ws?.readyState !== OPEN) return false; // sent again on (re)connect
    this.ws.send(JSON.stringify(message));
    return true;
  }

  private ensure(): void {
    if (this.ws || this.closed || !this.usable || this.timer !== null) return;
    let ws: SocketLike;
    try {
      ws = this.open();
    } catch {
      this.failed();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const reconnected = this.everOpen;
      this.failures = 0;
      this.everOpen = true;
      if (this.watchers.size) this.post({ type: "watch" });
      for (const id of this.followers.keys()) this.subscribe(id);
      // Events may have been missed while away: the watchers re-read.
      if (reconnected) for (const w of this.watchers) w({ type: "resync" });
    };
    ws.onmessage = (ev: MessageEvent) => {
      this.dispatch(ev.data);
    };
    ws.onclose = () => {
      if (this.ws === ws) this.ws = null;
      this.failed();
    };
    ws.onerror = () => {
      // onclose follows and reconnects
    };
  }

  private failed(): void {
    this.failures += 1;
    if (!this.everOpen && this.failures >= GIVE_UP_AFTER) {
      this.usable = false;
      for (const [id, f] of this.followers) {
        f.onEvent({ type: "socket-unusable", generation_id: id });
      }
      return;
    }
    if (this.closed || (this.followers.size === 0 && this.watchers.size === 0)) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.ensure();
    }, this.backoff(this.failures - 1));
  }

  private dispatch(raw: unknown): void {
    if (typeof raw !== "string") return;
    let ev: SocketEvent;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return;
      ev = parsed as SocketEvent;
    } catch {
      return;
    }
    const gid = ev.generation_id;
    if (typeof gid === "string" && typeof ev.seq === "number") {
      const f = this.followers.get(gid);
      if (!f || ev.seq <= f.after) return; // already seen (a replay after reconnect)
      f.after = ev.seq;
      f.onEvent(ev);
      return;
    }
    if (typeof gid === "string" && ev.type !== "generation" && this.followers.has(gid)) {
      this.followers.get(gid)?.onEvent(ev); // served from the database: no seq; or an error
      return;
    }
    if (ev.type === "conversation" || ev.type === "generation" || ev.type === "resync" || ev.type === "file") {
      for (const w of this.watchers) w(ev);
    }
  }
}
