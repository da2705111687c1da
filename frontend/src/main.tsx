import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import "./styles.css";
import { App } from "./App";
import { warmUpMarkdown } from "./components/Markdown";
import { getLocale } from "./i18n";
import { applyTheme, watchSystemTheme } from "./lib/theme";
import { store } from "./store/chat";

applyTheme();
watchSystemTheme();
const locale = getLocale();
document.documentElement.lang = locale === "zh" ? "zh-CN" : locale;

const initial = /^#\/c\/(.+)$/.exec(window.location.hash)?.[1];
void store.start(initial ? decodeURIComponent(initial) : null);

const idle = (cb: () => void): void => {
  if (typeof requestIdleCallback === "function") requestIdleCallback(cb, { timeout: 2000 });
  else setTimeout(cb, 500);
};
idle(warmUpMarkdown);

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}
