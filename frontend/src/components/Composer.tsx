/** The message box. Its text is local state: typing re-renders only this component. */

import { useEffect, useRef, useState } from "react";
import { useT } from "../i18n";
import { store, useChat } from "../store/chat";
import { Icon } from "./Icon";
import { CompareChooser } from "./SideBySide";

export const FOCUS_COMPOSER = "chatgate:focus-composer";

export function Composer() {
  const t = useT();
  const [text, setText] = useState("");
  const [comparing, setComparing] = useState(false);
  const [models, setModels] = useState<string[]>([]);
  const busy = useChat((s) => s.generation !== null);
  const ready = useChat((s) => s.status === "ready");
  const area = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    const focus = () => area.current?.focus();
    window.addEventListener(FOCUS_COMPOSER, focus);
    focus();
    return () => {
      window.removeEventListener(FOCUS_COMPOSER, focus);
    };
  }, []);

  const submit = () => {
    if (busy || !text.trim() || !ready) return;
    void store.send(text, comparing && models.length > 1 ? models : []);
    setText("");
  };

  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      {comparing ? <CompareChooser chosen={models} onChange={setModels} /> : null}
      <div className="composer-box">
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
