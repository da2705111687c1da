/**
 * Messages form a tree (parentId): edit and regenerate add siblings, and a conversation shows the
 * branch from the root to its leaf. Helpers memoise on the message map's identity, which the
 * store replaces on every change.
 */

import type { Message } from "../api/types";

export type MessageMap = ReadonlyMap<string, Message>;

const ROOT = "\0root";

const childrenCache = new WeakMap<MessageMap, Map<string, Message[]>>();

/** Children of every message (key ROOT for top-level messages), oldest first. */
export function childrenIndex(messages: MessageMap): Map<string, Message[]> {
  let index = childrenCache.get(messages);
  if (index) return index;
  index = new Map();
  for (const m of messages.values()) {
    const key = m.parentId ?? ROOT;
    const list = index.get(key);
    if (list) list.push(m);
    else index.set(key, [m]);
  }
  for (const list of index.values()) list.sort((a, b) => a.createdAt - b.createdAt);
  childrenCache.set(messages, index);
  return index;
}

export function siblingsOf(messages: MessageMap, message: Message): Message[] {
  return childrenIndex(messages).get(message.parentId ?? ROOT) ?? [message];
}

/** Follow the newest child down from `id` to a leaf. */
export function deepestLeaf(messages: MessageMap, id: string): string {
  const index = childrenIndex(messages);
  let current = id;
  for (;;) {
    const kids = index.get(current);
    const last = kids?.[kids.length - 1];
    if (!last) return current;
    current = last.id;
  }
}

/** The newest message overall: the default leaf when none is recorded. */
export function newestMessage(messages: MessageMap): Message | undefined {
  let best: Message | undefined;
  for (const m of messages.values()) if (!best || m.createdAt >= best.createdAt) best = m;
  return best;
}

const summaryCache = new WeakMap<readonly Message[], Message[]>();

/** The branch with each summary checkpoint right after the message it follows (server mode). */
export function withSummaries(messages: MessageMap, thread: readonly Message[]): readonly Message[] {
  let any = false;
  for (const m of messages.values()) {
    if (m.role === "summary") {
      any = true;
      break;
    }
  }
  if (!any) return thread;
  const cached = summaryCache.get(thread);
  if (cached) return cached;
  const index = childrenIndex(messages);
  const out: Message[] = [];
  for (const m of thread) {
    out.push(m);
    for (const kid of index.get(m.id) ?? []) if (kid.role === "summary") out.push(kid);
  }
  summaryCache.set(thread, out);
  return out;
}

const threadCache = new WeakMap<MessageMap, Map<string, Message[]>>();

/** The branch ending at leafId (or at the newest message), root first. */
export function threadOf(messages: MessageMap, leafId: string | null): Message[] {
  const leaf = leafId !== null && messages.has(leafId) ? leafId : newestMessage(messages)?.id;
  if (leaf === undefined) return [];
  let perMap = threadCache.get(messages);
  const cached = perMap?.get(leaf);
  if (cached) return cached;
  const out: Message[] = [];
  const seen = new Set<string>();
  let m = messages.get(leaf);
  while (m && !seen.has(m.id)) {
    seen.add(m.id);
    out.push(m);
    m = m.parentId === null ? undefined : messages.get(m.parentId);
  }
  out.reverse();
  if (!perMap) {
    perMap = new Map();
    threadCache.set(messages, perMap);
  }
  perMap.set(leaf, out);
  return out;
}
