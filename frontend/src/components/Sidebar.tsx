/** Conversation list: new chat, search (message text too), rename, pin, delete. */

import { memo, useEffect, useState } from "react";
import { logout } from "../api";
import type { Conversation } from "../api/types";
import { LOCALES, isLocale, setLocale, useLocale, useT } from "../i18n";
import { setTheme, useTheme, type ThemeChoice } from "../lib/theme";
import { store, useChat } from "../store/chat";
import { useMe } from "./adminHooks";
import { FOCUS_COMPOSER } from "./Composer";
import { Icon } from "./Icon";

function closeDrawer(): void {
  document.documentElement.dataset.drawer = "closed";
}

function openChat(id: string, messageId: string | null = null) {
  void store.open(id, messageId);
  closeDrawer();
}

const ConversationItem = memo(function ConversationItem({ c, active }: { c: Conversation; active: boolean }) {
  const t = useT();
  const [mode, setMode] = useState<"view" | "rename" | "confirm">("view");
  const [title, setTitle] = useState(c.title);
  const name = c.title || t("untitled");
  if (mode === "rename") {
    return (
      <li className="conv editing">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void store.rename(c.id, title || c.title);
            setMode("view");
          }}
        >
          <input
            aria-label={t("rename")}
            value={title}
            // The user asked to rename: the field takes focus.
            autoFocus
            onChange={(e) => {
              setTitle(e.target.value);
            }}
            onBlur={() => {
              setMode("view");
            }}
            onKeyDown={(e) => {
              if (e.key === "Escape") {
                e.stopPropagation();
                setMode("view");
              }
            }}
          />
        </form>
      </li>
    );
  }
  if (mode === "confirm") {
    return (
      <li className="conv confirm" role="group" aria-label={t("confirmDelete", { title: name })}>
        <span className="conv-title">{t("confirmDelete", { title: name })}</span>
        <span className="conv-confirm-actions">
          <button
            type="button"
            className="btn danger"
            onClick={() => {
              void store.remove(c.id);
            }}
          >
            {t("delete")}
          </button>
          <button
            type="button"
            className="btn"
            // Focus the safe choice first.
            autoFocus
            onClick={() => {
              setMode("view");
            }}
          >
            {t("cancel")}
          </button>
        </span>
      </li>
    );
  }
  return (
    <li className={`conv${active ? " active" : ""}`}>
      <button
        type="button"
        className="conv-open"
        aria-current={active ? "page" : undefined}
        onClick={() => {
          openChat(c.id);
        }}
      >
        {c.pinned ? (
          <span className="pin-mark" title={t("pinned")}>
            <Icon name="pin" size={13} />
          </span>
        ) : null}
        <span className="conv-title">{name}</span>
      </button>
      <span className="conv-actions" role="group" aria-label={t("chatActions", { title: name })}>
        <button
          type="button"
          className="icon-btn"
          aria-label={c.pinned ? t("unpin") : t("pin")}
          aria-pressed={c.pinned}
          title={c.pinned ? t("unpin") : t("pin")}
          onClick={() => {
            void store.togglePin(c.id);
          }}
        >
          <Icon name={c.pinned ? "unpin" : "pin"} />
        </button>
        <button
          type="button"
          className="icon-btn"
          aria-label={t("rename")}
          title={t("rename")}
          onClick={() => {
            setTitle(c.title);
            setMode("rename");
          }}
        >
          <Icon name="edit" />
        </button>
        <button
          type="button"
          className="icon-btn"
          aria-label={t("delete")}
          title={t("delete")}
          onClick={() => {
            setMode("confirm");
          }}
        >
          <Icon name="trash" />
        </button>
      </span>
    </li>
  );
});

function SearchResults() {
  const t = useT();
  const hits = useChat((s) => s.searchHits);
  if (hits === null) return null;
  if (!hits.length) return <p className="empty-note">{t("noResults")}</p>;
  return (
    <ul className="hits" aria-label={t("search")}>
      {hits.map((h) => (
        <li key={`${h.conversationId}:${h.messageId ?? ""}`}>
          <button
            type="button"
            className="hit"
            onClick={() => {
              openChat(h.conversationId, h.messageId);
            }}
          >
            <span className="hit-title">{h.title || t("untitled")}</span>
            <span className="hit-snippet">{h.snippet}</span>
          </button>
        </li>
      ))}
    </ul>
  );
}

function SearchBox() {
  const t = useT();
  const [q, setQ] = useState("");
  useEffect(() => {
    const timer = setTimeout(() => {
      void store.search(q);
    }, 150);
    return () => {
      clearTimeout(timer);
    };
  }, [q]);
  return (
    <div role="search" className="search">
      <input
        type="search"
        value={q}
        placeholder={t("search")}
        aria-label={t("search")}
        onChange={(e) => {
          setQ(e.target.value);
        }}
        onKeyDown={(e) => {
          if (e.key === "Escape" && q) {
            e.stopPropagation();
            setQ("");
          }
        }}
      />
    </div>
  );
}

function Preferences() {
  const t = useT();
  const locale = useLocale();
  const theme = useTheme();
  const mode = useChat((s) => s.mode);
  return (
    <div className="prefs">
      <label>
        <span>{t("theme")}</span>
        <select
          value={theme}
          onChange={(e) => {
            setTheme(e.target.value as ThemeChoice);
          }}
        >
          <option value="system">{t("themeSystem")}</option>
          <option value="light">{t("themeLight")}</option>
          <option value="dark">{t("themeDark")}</option>
        </select>
      </label>
      <label>
        <span>{t("language")}</span>
        <select
          value={locale}
          onChange={(e) => {
            if (isLocale(e.target.value)) setLocale(e.target.value);
          }}
        >
          {Object.entries(LOCALES).map(([code, name]) => (
            <option key={code} value={code} lang={code}>
              {name}
            </option>
          ))}
        </select>
      </label>
      <p className="mode-note">{mode === "server" ? t("serverMode") : t("localMode")}</p>
      <Account />
    </div>
  );
}

/** Who is signed in, Sign out (when accounts are on), and the admin page's link for admins. */
function Account() {
  const t = useT();
  const me = useMe();
  if (!me || (me.singleUser && !me.isAdmin)) return null;
  return (
    <div className="account">
      {me.singleUser ? null : <span className="account-name">{t("adminSignedInAs", { name: me.name })}</span>}
      {me.isAdmin ? (
        <a className="account-link" href="#/admin" onClick={closeDrawer}>
          {t("adminLink")}
        </a>
      ) : null}
      {me.singleUser ? null : (
        <button
          type="button"
          className="account-link"
          onClick={() => {
            void logout().finally(() => {
              window.location.reload();
            });
          }}
        >
          {t("signOut")}
        </button>
      )}
    </div>
  );
}

export function Sidebar() {
  const t = useT();
  const conversations = useChat((s) => s.conversations);
  const activeId = useChat((s) => s.activeId);
  const searching = useChat((s) => s.searchHits !== null);
  const pinned = conversations.filter((c) => c.pinned);
  const recent = conversations.filter((c) => !c.pinned);
  return (
    <nav className="sidebar" aria-label={t("conversations")} id="sidebar">
      <div className="sidebar-head">
        <span className="brand">{t("appName")}</span>
        <button
          type="button"
          className="btn new-chat"
          aria-keyshortcuts="Control+Shift+O"
          title="Ctrl+Shift+O"
          onClick={() => {
            store.newChat();
            closeDrawer();
            window.dispatchEvent(new Event(FOCUS_COMPOSER));
          }}
        >
          <Icon name="plus" /> {t("newChat")}
        </button>
      </div>
      <SearchBox />
      <div className="conv-scroll">
        {searching ? (
          <SearchResults />
        ) : conversations.length === 0 ? (
          <p className="empty-note">{t("noChats")}</p>
        ) : (
          <>
            {pinned.length ? (
              <section aria-label={t("pinned")}>
                <h2 className="group-title">{t("pinned")}</h2>
                <ul className="conv-list">
                  {pinned.map((c) => (
                    <ConversationItem key={c.id} c={c} active={c.id === activeId} />
                  ))}
                </ul>
              </section>
            ) : null}
            <section aria-label={t("recent")}>
              <h2 className="group-title">{t("recent")}</h2>
              <ul className="conv-list">
                {recent.map((c) => (
                  <ConversationItem key={c.id} c={c} active={c.id === activeId} />
                ))}
              </ul>
            </section>
          </>
        )}
      </div>
      <Preferences />
    </nav>
  );
}
