/** The main column: header (menu, title, context gauge, model, export/import, settings),
 * messages, composer. */

import { useState } from "react";
import { useT } from "../i18n";
import { useChat } from "../store/chat";
import { ChatTools } from "./ChatTools";
import { Composer } from "./Composer";
import { ContextGauge } from "./ContextGauge";
import { Icon } from "./Icon";
import { MessageList } from "./MessageList";
import { ModelPicker, SettingsPanel } from "./Settings";

export function ChatView() {
  const t = useT();
  const activeId = useChat((s) => s.activeId);
  const title = useChat((s) =>
    s.activeId === null ? "" : (s.conversations.find((c) => c.id === s.activeId)?.title ?? ""),
  );
  const loaded = useChat((s) => s.activeId === null || s.messages.has(s.activeId));
  const [settingsOpen, setSettingsOpen] = useState(false);
  return (
    <main className="chat" aria-label={title || t("newChat")}>
      <header className="chat-head">
        <button
          type="button"
          className="icon-btn menu-btn"
          aria-label={t("menu")}
          aria-controls="sidebar"
          onClick={() => {
            const root = document.documentElement;
            root.dataset.drawer = root.dataset.drawer === "open" ? "closed" : "open";
          }}
        >
          <Icon name="menu" size={20} />
        </button>
        <h1 className="chat-title">{title || t("newChat")}</h1>
        <ContextGauge />
        <ModelPicker />
        <ChatTools />
        <button
          type="button"
          className="icon-btn"
          aria-label={t("settings")}
          aria-expanded={settingsOpen}
          aria-controls="chat-settings"
          title={t("settings")}
          onClick={() => {
            setSettingsOpen((o) => !o);
          }}
        >
          <Icon name="gear" size={18} />
        </button>
      </header>
      {settingsOpen ? (
        <div id="chat-settings">
          <SettingsPanel
            onClose={() => {
              setSettingsOpen(false);
            }}
          />
        </div>
      ) : null}
      {activeId === null ? (
        <div className="empty">
          <h2>{t("emptyTitle")}</h2>
        </div>
      ) : loaded ? (
        <MessageList key={activeId} conversationId={activeId} />
      ) : (
        <div className="empty" aria-busy="true">
          {t("loading")}
        </div>
      )}
      <Composer />
    </main>
  );
}
