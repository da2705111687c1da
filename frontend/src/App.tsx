/** The application shell: sidebar + chat, global shortcuts, the announcer for screen readers. */

import { useEffect, useState } from "react";
import { AdminPage } from "./components/Admin";
import { ChatView } from "./components/ChatView";
import { FOCUS_COMPOSER } from "./components/Composer";
import { Icon } from "./components/Icon";
import { Login } from "./components/Login";
import { Sidebar } from "./components/Sidebar";
import { useT } from "./i18n";
import { store, useChat } from "./store/chat";

function useShortcuts(): void {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const root = document.documentElement;
      if (e.key === "Escape" && root.dataset.drawer === "open") {
        root.dataset.drawer = "closed";
        return;
      }
      if (e.key === "Escape" && store.getState().generation) {
        e.preventDefault();
        store.stop();
        return;
      }
      if ((e.ctrlKey || e.metaKey) && e.shiftKey && e.key.toLowerCase() === "o") {
        e.preventDefault();
        store.newChat();
        window.dispatchEvent(new Event(FOCUS_COMPOSER));
      }
    };
    window.addEventListener("keydown", onKey);
    return () => {
      window.removeEventListener("keydown", onKey);
    };
  }, []);
}

type Route = "chat" | "admin";

const routeOf = (hash: string): Route => (hash === "#/admin" ? "admin" : "chat");

/** Which page the address names: #/admin is the admin page, anything else the chat. */
function useRoute(): Route {
  const [route, setRoute] = useState(() => routeOf(window.location.hash));
  useEffect(() => {
    const onHash = () => {
      setRoute(routeOf(window.location.hash));
    };
    window.addEventListener("hashchange", onHash);
    return () => {
      window.removeEventListener("hashchange", onHash);
    };
  }, []);
  return route;
}

/** Keep the open chat in the address (#/c/ID) so a reload returns to it (not on other pages). */
function useHashSync(route: Route): void {
  const activeId = useChat((s) => s.activeId);
  const ready = useChat((s) => s.status === "ready");
  useEffect(() => {
    if (!ready || route !== "chat") return;
    const hash = activeId === null ? "" : `#/c/${encodeURIComponent(activeId)}`;
    if (window.location.hash !== hash) {
      history.replaceState(null, "", hash || window.location.pathname + window.location.search);
    }
  }, [activeId, ready, route]);
}

/** Says "answer complete" politely when a generation ends (the stream itself is not read out). */
function Announcer() {
  const t = useT();
  const busy = useChat((s) => s.generation !== null);
  const [was, setWas] = useState(busy);
  const [text, setText] = useState("");
  if (busy !== was) {
    setWas(busy);
    setText(busy ? "" : t("answerDone"));
  }
  return (
    <div className="sr-only" aria-live="polite" role="status">
      {text}
    </div>
  );
}

function Notice() {
  const t = useT();
  const notice = useChat((s) => s.notice);
  if (!notice) return null;
  return (
    <div className="notice" role="alert">
      <span>{notice}</span>
      <button
        type="button"
        className="icon-btn"
        aria-label={t("cancel")}
        onClick={() => {
          store.dismissNotice();
        }}
      >
        <Icon name="close" />
      </button>
    </div>
  );
}

export function App() {
  const t = useT();
  const status = useChat((s) => s.status);
  const startError = useChat((s) => s.startError);
  const pendingWrites = useChat((s) => s.pendingWrites);
  const route = useRoute();
  useShortcuts();
  useHashSync(route);
  if (status === "login") return <Login />;
  if (status === "failed") {
    return (
      <main className="login">
        <p role="alert" className="msg-error">
          {t("error")}: {startError}
        </p>
        <button
          type="button"
          className="btn"
          onClick={() => {
            window.location.reload();
          }}
        >
          {t("retry")}
        </button>
      </main>
    );
  }
  if (route === "admin") return <AdminPage />;
  return (
    <div
      className="app"
      data-ready={status === "ready" ? "true" : "false"}
      data-saved={pendingWrites === 0 ? "true" : "false"}
    >
      <Sidebar />
      <div
        className="scrim"
        aria-hidden="true"
        onClick={() => {
          document.documentElement.dataset.drawer = "closed";
        }}
      />
      <ChatView />
      <Announcer />
      <Notice />
    </div>
  );
}
