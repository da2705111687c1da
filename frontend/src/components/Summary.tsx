/**
 * Where the model's view of the conversation begins: a marker at that place in the thread, and
 * the summary checkpoint standing for the earlier turns (server mode), readable and editable in
 * place. Summaries are shown as plain text, never as HTML.
 */

import { memo, useState } from "react";
import type { Message } from "../api/types";
import { useT } from "../i18n";
import type { TrimMarker } from "../lib/contextGauge";
import { store } from "../store/chat";
import { Icon } from "./Icon";

export function ContextMarker({ marker }: { marker: TrimMarker }) {
  const t = useT();
  const { dropped, summarised } = marker;
  const text =
    summarised === 0
      ? t("markerDropped", { dropped })
      : dropped === 0
        ? t("markerSummarised", { summarised })
        : t("markerBoth", { dropped, summarised });
  return (
    <div className="ctx-marker" role="note" data-testid="context-marker">
      <span>{text}</span>
    </div>
  );
}

function SummaryEditor({ message, onDone }: { message: Message; onDone: () => void }) {
  const t = useT();
  const [text, setText] = useState(message.content);
  const [saving, setSaving] = useState(false);
  const submit = async () => {
    if (!text.trim() || saving) return;
    setSaving(true);
    const ok = await store.editSummary(message.conversationId, message.id, text);
    setSaving(false);
    if (ok) onDone();
  };
  return (
    <form
      className="editor summary-editor"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <textarea
        aria-label={t("summaryText")}
        value={text}
        rows={6}
        // Focus moves into the editor the user just opened.
        autoFocus
        onChange={(e) => {
          setText(e.target.value);
        }}
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            e.stopPropagation();
            onDone();
          }
        }}
      />
      <div className="editor-actions">
        <button type="button" className="btn" onClick={onDone}>
          {t("cancel")}
        </button>
        <button type="submit" className="btn primary" disabled={!text.trim() || text === message.content || saving}>
          {t("save")}
        </button>
      </div>
    </form>
  );
}

/** A summary checkpoint: a visible marker, the summary itself one click away. */
export const SummaryItem = memo(function SummaryItem({ message }: { message: Message }) {
  const t = useT();
  const [open, setOpen] = useState(false);
  const [editing, setEditing] = useState(false);
  const bodyId = `summary-${message.id}`;
  return (
    <aside className="summary" data-id={message.id} data-role="summary" aria-label={t("summary")}>
      <div className="summary-head">
        <button
          type="button"
          className="reasoning-toggle"
          aria-expanded={open}
          aria-controls={bodyId}
          onClick={() => {
            setOpen((o) => !o);
            setEditing(false);
          }}
        >
          {t("summary")}
          <span className={`chevron${open ? " open" : ""}`}>
            <Icon name="right" size={14} />
          </span>
        </button>
        {open && !editing ? (
          <button
            type="button"
            className="icon-btn"
            aria-label={t("summaryEdit")}
            title={t("summaryEdit")}
            onClick={() => {
              setEditing(true);
            }}
          >
            <Icon name="edit" />
          </button>
        ) : null}
      </div>
      {open ? (
        <div id={bodyId}>
          {editing ? (
            <SummaryEditor
              message={message}
              onDone={() => {
                setEditing(false);
              }}
            />
          ) : (
            <div className="reasoning-body summary-text">{message.content}</div>
          )}
        </div>
      ) : null}
    </aside>
  );
});
