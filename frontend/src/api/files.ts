/**
 * Files (server mode): uploads for images and documents attached to a message, their indexing
 * status, their content for thumbnails, and the passages citations point to. The /api/files
 * contract is in docs (README, "Files"); every read is checked against the owner server-side.
 * Limits are checked here first so an oversized or unsupported file is refused with a clear
 * message before a byte is sent (the server enforces the same limits while reading).
 */

import { errorMessage } from "./openai";

export type FileKind = "image" | "document";
export type FileStatus = "ready" | "indexing" | "error";

/** What a message carries about each attached file. */
export interface Attachment {
  id: string;
  name: string;
  mime: string;
  kind: FileKind;
  size: number;
}

/** An uploaded file, as the server describes it. */
export interface StoredFile extends Attachment {
  status: FileStatus;
  pages: number | null;
  error: string | null;
}

/** A passage an answer drew on (citation), and what clicking it shows. */
export interface Citation {
  fileId: string;
  name: string;
  page: number | null;
  n: number;
  text: string;
}

export const MAX_ATTACHMENTS = 10;
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
export const MAX_FILE_BYTES = 20 * 1024 * 1024;

export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
const DOCUMENT_TYPES = [
  "application/pdf",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "text/markdown",
  "text/plain",
  "text/csv",
  "application/json",
];
/** Source and text files are recognised by name (browsers give many of them no type). */
const TEXT_SUFFIX =
  /\.(txt|md|markdown|rst|csv|tsv|json|ya?ml|toml|ini|cfg|conf|xml|html|css|py|m?js|tsx?|jsx|java|kts?|scala|go|rs|c|h|cc|cpp|hpp|cs|rb|php|swift|m|sh|bash|zsh|ps1|sql|r|lua|pl|dart|vue|svelte)$/i;

/** What the file will be sent as; null when it is not taken. */
export function fileType(file: Pick<File, "name" | "type">): { mime: string; kind: FileKind } | null {
  const type = file.type.toLowerCase();
  if (IMAGE_TYPES.includes(type)) return { mime: type, kind: "image" };
  if (type.startsWith("image/")) return null; // SVG and the rest: not taken
  if (DOCUMENT_TYPES.includes(type)) return { mime: type, kind: "document" };
  if (TEXT_SUFFIX.test(file.name)) {
    return { mime: type.startsWith("text/") ? type : "application/octet-stream", kind: "document" };
  }
  if (/\.pdf$/i.test(file.name)) return { mime: "application/pdf", kind: "document" };
  if (/\.docx$/i.test(file.name)) return { mime: DOCUMENT_TYPES[1] ?? "", kind: "document" };
  return null;
}

export type FileProblem =
  | { problem: "type"; name: string }
  | { problem: "size"; name: string; limit: number }
  | { problem: "count"; limit: number };

/** Why a file cannot be attached (checked before any upload), or null. */
export function checkFile(file: Pick<File, "name" | "type" | "size">, alreadyAttached: number): FileProblem | null {
  if (alreadyAttached >= MAX_ATTACHMENTS) return { problem: "count", limit: MAX_ATTACHMENTS };
  const type = fileType(file);
  if (!type) return { problem: "type", name: file.name };
  const limit = type.kind === "image" ? MAX_IMAGE_BYTES : MAX_FILE_BYTES;
  if (file.size > limit) return { problem: "size", name: file.name, limit };
  return null;
}

type Json = Record<string, unknown>;
const str = (v: unknown, d = ""): string => (typeof v === "string" ? v : d);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

export function toAttachment(o: Json): Attachment {
  return {
    id: str(o.id),
    name: str(o.name),
    mime: str(o.mime, "application/octet-stream"),
    kind: o.kind === "image" ? "image" : "document",
    size: num(o.size) ?? 0,
  };
}

export function toStoredFile(o: Json): StoredFile {
  const status = o.status === "indexing" || o.status === "error" ? o.status : "ready";
  return { ...toAttachment(o), status, pages: num(o.pages), error: typeof o.error === "string" ? o.error : null };
}

export function toCitation(o: Json): Citation {
  return { fileId: str(o.file_id), name: str(o.name), page: num(o.page), n: num(o.n) ?? 0, text: str(o.text) };
}

/** Where the bytes are (same origin: the CSP's img-src 'self' allows it as a thumbnail). */
export function contentUrl(id: string): string {
  return `/api/files/${encodeURIComponent(id)}/content`;
}

/** Upload one file: the raw bytes as the body, its name in the query, its type as Content-Type. */
export async function uploadFile(file: File, signal?: AbortSignal): Promise<StoredFile> {
  const type = fileType(file);
  const res = await fetch(`/api/files?name=${encodeURIComponent(file.name)}`, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": type?.mime ?? "application/octet-stream",
      Accept: "application/json",
      "X-Requested-With": "chatgate",
    },
    body: file,
    signal: signal ?? null,
  });
  if (!res.ok) throw new Error(await errorMessage(res));
  return toStoredFile((await res.json()) as Json);
}

/** A file's current state (its indexing status); null when it is gone (or not the user's). */
export async function getFile(id: string, signal?: AbortSignal): Promise<StoredFile | null> {
  const res = await fetch(`/api/files/${encodeURIComponent(id)}`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    signal: signal ?? null,
  });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(await errorMessage(res));
  return toStoredFile((await res.json()) as Json);
}

export async function deleteFile(id: string): Promise<void> {
  await fetch(`/api/files/${encodeURIComponent(id)}`, {
    method: "DELETE",
    credentials: "same-origin",
    headers: { "X-Requested-With": "chatgate" },
  });
}

/** The passage citation `n` of a file points to. */
export async function passage(fileId: string, n: number): Promise<Citation> {
  const res = await fetch(`/api/files/${encodeURIComponent(fileId)}/passages/${n}`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!res.ok) throw new Error(await errorMessage(res));
  return toCitation((await res.json()) as Json);
}
