/**
 * Export the chat on screen (JSON: the whole tree, importable; Markdown: the branch) and import
 * a JSON export from a file; the imported chat opens. Server mode goes through /api (export,
 * import), local mode does the same in the browser (api/transfer). Failures show as the page's
 * notice.
 */

import { useEffect, useRef, useState } from "react";
import type { ExportFormat } from "../api/types";
import { useT } from "../i18n";
import { download } from "../lib/download";
import { store, useChat } from "../store/chat";
import { Icon } from "./Icon";

const MENU_ID = "chat-tools-menu";

export function ChatTools() {
  const t = useT();
  const hasChat = useChat((s) => s.activeId !== null);
  const ready = useChat((s) => s.status === "ready");
  const [open, setOpen] = useState(false);
  const root = useRef<HTMLDivElement>(null);
  const toggle = useRef<HTMLButtonElement>(null);
  const picker = useRef<HTMLInputElement>(null);

  // A click anywhere else closes the menu.
  useEffect(() => {
    if (!open) return;
    const onDown = (e: PointerEvent) => {
      if (!root.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("pointerdown", onDown);
    return () => {
      document.removeEventListener("pointerdown", onDown);
    };
  }, [open]);

  const exportAs = async (format: ExportFormat) => {
    setOpen(false);
    const file = await store.exportActive(format);
    if (file) download(file);
  };

  const importFile = async (file: File) => {
    let data: unknown;
    try {
      data = JSON.parse(await file.text());
    } catch (e) {
      store.notify(t("importNotJson", { name: file.name, error: e instanceof Error ? e.message : String(e) }));
      return;
    }
    await store.importData(data);
  };

  return (
    <div
      className="chat-tools"
      ref={root}
      onKeyDown={(e) => {
        if (e.key === "Escape" && open) {
          e.stopPropagation();
          setOpen(false);
          toggle.current?.focus();
        }
      }}
    >
      <button
        ref={toggle}
        type="button"
        className="icon-btn"
        aria-label={t("chatTools")}
        title={t("chatTools")}
        aria-expanded={open}
        aria-controls={MENU_ID}
        onClick={() => {
          setOpen((o) => !o);
        }}
      >
        <Icon name="more" size={18} />
      </button>
      {open ? (
        <div id={MENU_ID} className="tools-pop" role="group" aria-label={t("chatTools")}>
          <button type="button" className="tools-item" disabled={!hasChat} onClick={() => void exportAs("json")}>
            <Icon name="download" />
            {t("exportJson")}
          </button>
          <button type="button" className="tools-item" disabled={!hasChat} onClick={() => void exportAs("markdown")}>
            <Icon name="download" />
            {t("exportMarkdown")}
          </button>
          <button
            type="button"
            className="tools-item"
            disabled={!ready}
            onClick={() => {
              setOpen(false);
              picker.current?.click();
            }}
          >
            <Icon name="upload" />
            {t("importJson")}
          </button>
        </div>
      ) : null}
      <input
        ref={picker}
        type="file"
        accept=".json,application/json"
        hidden
        data-testid="import-file"
        onChange={(e) => {
          const file = e.target.files?.[0];
          e.target.value = ""; // the same file can be picked again
          if (file) void importFile(file);
        }}
      />
    </div>
  );
}
