/**
 * The message box. Its text is local state: typing re-renders only this component. Files are
 * attached by paste, drop or the paperclip (server mode), checked before upload, uploaded at
 * once; a model that cannot see images refuses them here, with a clear message, before sending.
 */

import { useCallback, useEffect, useRef, useState } from "react";
import type { Attachment } from "../api/files";
import type { ModelInfo } from "../api/openai";
import { useT, type T } from "../i18n";
import { store, useChat } from "../store/chat";
import { AttachmentTray, useAttachments, type Pending } from "./Attachments";
import { Icon } from "./Icon";
import { CompareChooser } from "./SideBySide";

export const FOCUS_COMPOSER = "chatgate:focus-composer";

/** Why the message cannot go yet (files still uploading, or an image for a blind model). */
export function blocker(t: T, items: readonly Pending[], models: readonly string[], known: readonly ModelInfo[]): string | null {
  if (items.some((p) => !p.stored && !p.error)) return t("attachWait");
  if (items.some((p) => p.kind === "image" && p.stored)) {
    const blind = models.find((m) => known.find((k) => k.id === m)?.vision === false);
    if (blind) return t("noVision", { model: blind });
  }
  return null;
}

export function Composer() {
  const t = useT();
  const [text, setText] = useState("");
  const [comparing, setComparing] = useState(false);
  const [models, setModels] = useState<string[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const busy = useChat((s) => s.generation !== null);
  const ready = useChat((s) => s.status === "ready");
  const acceptsFiles = useChat((s) => s.acceptsFiles);
  const known = useChat((s) => s.models);
  const model = useChat((s) => (s.conversations.find((c) => c.id === s.activeId)?.settings ?? s.draft).model);
  const area = useRef<HTMLTextAreaElement>(null);
  const picker = useRef<HTMLInputElement>(null);
  const files = useAttachments(useCallback((p: string) => {
    setProblem(p);
  }, []));

  // A file dropped beside the composer must not make the browser leave the chat to show it.
  useEffect(() => {
    const guard = (e: DragEvent) => {
      if (e.dataTransfer?.types.includes("Files")) e.preventDefault();
    };
    window.addEventListener("dragover", guard);
    window.addEventListener("drop", guard);
    return () => {
      window.removeEventListener("dragover", guard);
      window.removeEventListener("drop", guard);
    };
  }, []);

  useEffect(() => {
    const focus = () => area.current?.focus();
    window.addEventListener(FOCUS_COMPOSER, focus);
    focus();
    return () => {
      window.removeEventListener(FOCUS_COMPOSER, focus);
    };
  }, []);

  const sideBySide = comparing && models.length > 1 ? models : [];
  const answering = sideBySide.length ? sideBySide : [model];
  const blocked = blocker(t, files.items, answering, known);

  const attach = (list: FileList | null | undefined) => {
    if (!list?.length) return;
    setProblem(null);
    if (!acceptsFiles) {
      setProblem(t("attachNotHere"));
      return;
    }
    files.add(Array.from(list));
  };

  const submit = () => {
    if (busy || !text.trim() || !ready) return;
    if (blocked) {
      setProblem(blocked);
      return;
    }
    const attachments: Attachment[] = files.items.flatMap((p) => (p.stored ? [p.stored] : []));
    void store.send(text, sideBySide, attachments);
    setText("");
    setProblem(null);
    files.clear();
  };

  return (
    <form
      className="composer"
      data-dragging={dragging}
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
      onDragOver={(e) => {
        if (!e.dataTransfer.types.includes("Files")) return;
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => {
        setDragging(false);
      }}
      onDrop={(e) => {
        if (!e.dataTransfer.files.length) return;
        e.preventDefault();
        setDragging(false);
        attach(e.dataTransfer.files);
      }}
    >
      {comparing ? <CompareChooser chosen={models} onChange={setModels} /> : null}
      <AttachmentTray items={files.items} onRemove={files.remove} />
      {problem ? (
        <div className="composer-problem" role="alert">
          {problem}
        </div>
      ) : null}
      {dragging ? <div className="drop-hint">{t("dropHere")}</div> : null}
      <div className="composer-box">
        {acceptsFiles ? (
          <>
            <button
              type="button"
              className="icon-btn attach-btn"
              aria-label={t("attach")}
              title={t("attach")}
              onClick={() => picker.current?.click()}
            >
              <Icon name="paperclip" />
            </button>
            <input
              ref={picker}
              type="file"
              multiple
              hidden
              data-testid="file-input"
              onChange={(e) => {
                attach(e.target.files);
                e.target.value = "";
              }}
            />
          </>
        ) : null}
        <button
          type="button"
          className={`icon-btn compare-toggle${comparing ? " on" : ""}`}
          aria-pressed={comparing}
          aria-label={t("sideBySide")}
          title={t("sideBySide")}
          onClick={() => {
            setComparing((c) => !c);
          }}
        >
          <Icon name="columns" />
        </button>
        <textarea
          ref={area}
          rows={1}
          value={text}
          placeholder={t("placeholder")}
          aria-label={t("composerLabel")}
          aria-describedby="composer-hint"
          aria-keyshortcuts="Enter"
          onChange={(e) => {
            setText(e.target.value);
          }}
          onPaste={(e) => {
            if (e.clipboardData.files.length) {
              e.preventDefault();
              attach(e.clipboardData.files);
            }
          }}
          onKeyDown={(e) => {
            // isComposing: Enter that confirms an IME candidate (Chinese, Japanese) is not "send".
            if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
              e.preventDefault();
              submit();
            }
          }}
        />
        {busy ? (
          <button
            type="button"
            className="send-btn stop"
            aria-label={t("stop")}
            aria-keyshortcuts="Escape"
            title={t("stop")}
            onClick={() => {
              store.stop();
            }}
          >
            <Icon name="stop" />
          </button>
        ) : (
          <button type="submit" className="send-btn" aria-label={t("send")} title={t("send")} disabled={!text.trim() || !ready}>
            <Icon name="up" size={18} />
          </button>
        )}
      </div>
      <div id="composer-hint" className="hint">
        {t("hint")}
      </div>
    </form>
  );
}
