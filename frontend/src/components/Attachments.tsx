/**
 * Attachments: in the composer (paste, drop or pick; limits checked before any upload; images as
 * thumbnails, documents as chips with their indexing status; removable before sending), and in
 * history (images as thumbnails from /api/files/{id}/content, documents as chips). Thumbnails
 * before upload are blob: URLs of the local file (CSP img-src 'self' data: blob:).
 */

import { useCallback, useEffect, useRef, useState } from "react";
import {
  checkFile,
  contentUrl,
  deleteFile,
  uploadFile,
  type Attachment,
  type FileProblem,
  type StoredFile,
} from "../api/files";
import { useT, type T } from "../i18n";
import { store, useChat } from "../store/chat";
import { Icon } from "./Icon";

export interface Pending {
  key: string;
  name: string;
  kind: "image" | "document";
  /** blob: URL of the local image, revoked when the item goes. */
  preview: string | null;
  stored: StoredFile | null;
  error: string | null;
}

export function problemText(t: T, p: FileProblem): string {
  if (p.problem === "count") return t("attachTooMany", { limit: p.limit });
  if (p.problem === "size") return t("attachTooLarge", { name: p.name, limit: Math.round(p.limit / 1024 / 1024) });
  return t("attachBadType", { name: p.name });
}

let seq = 0;

/** The composer's attachments: each uploads as soon as it is added. */
export function useAttachments(onProblem: (text: string) => void) {
  const t = useT();
  const [items, setItems] = useState<Pending[]>([]);
  const itemsRef = useRef(items);
  useEffect(() => {
    itemsRef.current = items;
  }, [items]);

  const patch = useCallback((key: string, change: Partial<Pending>) => {
    setItems((list) => list.map((p) => (p.key === key ? { ...p, ...change } : p)));
  }, []);

  const add = useCallback(
    (files: Iterable<File>) => {
      let count = itemsRef.current.length;
      const added: Pending[] = [];
      for (const file of files) {
        const problem = checkFile(file, count);
        if (problem) {
          onProblem(problemText(t, problem));
          continue;
        }
        count += 1;
        const image = file.type.startsWith("image/");
        const item: Pending = {
          key: `f${++seq}`,
          name: file.name,
          kind: image ? "image" : "document",
          preview: image && typeof URL.createObjectURL === "function" ? URL.createObjectURL(file) : null,
          stored: null,
          error: null,
        };
        added.push(item);
        uploadFile(file).then(
          (stored) => {
            patch(item.key, { stored });
            store.fileChanged(stored); // a document still indexing is followed until it settles
          },
          (e: unknown) => {
            patch(item.key, { error: e instanceof Error ? e.message : String(e) });
          },
        );
      }
      if (added.length) setItems((list) => [...list, ...added]);
    },
    [onProblem, patch, t],
  );

  const remove = useCallback((key: string) => {
    const item = itemsRef.current.find((p) => p.key === key);
    if (item?.preview) URL.revokeObjectURL(item.preview);
    if (item?.stored) void deleteFile(item.stored.id);
    setItems((list) => list.filter((p) => p.key !== key));
  }, []);

  /** After sending: the files now belong to the message. */
  const clear = useCallback(() => {
    for (const p of itemsRef.current) if (p.preview) URL.revokeObjectURL(p.preview);
    setItems([]);
  }, []);

  useEffect(
    () => () => {
      for (const p of itemsRef.current) if (p.preview) URL.revokeObjectURL(p.preview);
    },
    [],
  );

  return { items, add, remove, clear };
}

function StatusNote({ item }: { item: Pending }) {
  const t = useT();
  const live = useChat((s) => (item.stored ? s.files.get(item.stored.id) : undefined));
  const file = live ?? item.stored;
  if (item.error) return <span className="att-status error">{t("attachFailed", { error: item.error })}</span>;
  if (!file) return <span className="att-status">{t("uploading")}</span>;
  if (file.status === "indexing") return <span className="att-status">{t("indexing")}</span>;
  if (file.status === "error") return <span className="att-status error">{t("attachFailed", { error: file.error ?? "" })}</span>;
  return null;
}

export function AttachmentTray({ items, onRemove }: { items: readonly Pending[]; onRemove: (key: string) => void }) {
  const t = useT();
  if (!items.length) return null;
  return (
    <ul className="att-tray" aria-label={t("attachments")}>
      {items.map((p) => (
        <li key={p.key} className={`att att-${p.kind}`} data-state={p.error ? "error" : p.stored ? "uploaded" : "uploading"}>
          {p.preview ? <img className="att-thumb" src={p.preview} alt={p.name} /> : <Icon name="file" />}
          <span className="att-name">{p.name}</span>
          <StatusNote item={p} />
          <button
            type="button"
            className="icon-btn att-remove"
            aria-label={t("removeAttachment", { name: p.name })}
            title={t("removeAttachment", { name: p.name })}
            onClick={() => {
              onRemove(p.key);
            }}
          >
            <Icon name="close" size={14} />
          </button>
        </li>
      ))}
    </ul>
  );
}

/** A message's files in history. */
export function MessageAttachments({ attachments }: { attachments: readonly Attachment[] }) {
  const t = useT();
  const files = useChat((s) => s.files);
  return (
    <ul className="msg-attachments" aria-label={t("attachments")}>
      {attachments.map((a) => {
        const status = files.get(a.id)?.status;
        return a.kind === "image" ? (
          <li key={a.id} className="att att-image">
            <a href={contentUrl(a.id)} target="_blank" rel="noopener noreferrer">
              <img className="att-thumb" src={contentUrl(a.id)} alt={a.name} loading="lazy" />
            </a>
          </li>
        ) : (
          <li key={a.id} className="att att-document" data-status={status ?? "ready"}>
            <Icon name="file" />
            <span className="att-name">{a.name}</span>
            {status === "indexing" ? <span className="att-status">{t("indexing")}</span> : null}
          </li>
        );
      })}
    </ul>
  );
}
