/**
 * Side-by-side comparisons survive a reload: which user message has its answers shown in columns
 * (and how to find each answer again) is remembered in localStorage until one answer is kept.
 * The answers themselves live with the backend (the server owns and resumes their generations).
 */

import type { AnswerRef, Message } from "../api/types";
import type { Comparison } from "./state";

export const COMPARE_KEY = "chatgate.compare";
const KEEP = 20;

export interface StoredComparison {
  conversationId: string;
  userMessageId: string;
  answers: AnswerRef[];
}

function readAll(): StoredComparison[] {
  try {
    const v = JSON.parse(localStorage.getItem(COMPARE_KEY) ?? "[]") as unknown;
    return Array.isArray(v) ? (v as StoredComparison[]).filter((c) => typeof c.conversationId === "string") : [];
  } catch {
    return [];
  }
}

function writeAll(list: StoredComparison[]): void {
  try {
    localStorage.setItem(COMPARE_KEY, JSON.stringify(list.slice(-KEEP)));
  } catch {
    // not remembered: the columns close on reload, every answer stays a sibling
  }
}

export function refOf(m: Message): AnswerRef {
  return m.generationId ? { id: m.id, generationId: m.generationId } : { id: m.id };
}

export function remember(c: Comparison): void {
  const rest = readAll().filter((x) => x.conversationId !== c.conversationId);
  writeAll([...rest, { conversationId: c.conversationId, userMessageId: c.userMessageId, answers: c.answers.map(refOf) }]);
}

export function recall(conversationId: string): StoredComparison | null {
  return readAll().find((x) => x.conversationId === conversationId) ?? null;
}

export function forget(conversationId: string): void {
  const all = readAll();
  const rest = all.filter((x) => x.conversationId !== conversationId);
  if (rest.length !== all.length) writeAll(rest);
}
