/** The model's reasoning: a collapsible block, open and live while it streams, closed once the answer starts. */

import { useId, useLayoutEffect, useRef, useState } from "react";
import { useT } from "../i18n";
import { Icon } from "./Icon";

interface Props {
  text: string;
  /** Still streaming reasoning (no answer text yet). */
  live: boolean;
}

export function Reasoning({ text, live }: Props) {
  const t = useT();
  const id = useId();
  const [open, setOpen] = useState(live);
  const [wasLive, setWasLive] = useState(live);
  // Collapse the moment the answer starts (state derived during render, no extra frame).
  if (live !== wasLive) {
    setWasLive(live);
    setOpen(live);
  }
  const body = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    if (live && body.current) body.current.scrollTop = body.current.scrollHeight;
  }, [live, text]);
  return (
    <div className="reasoning" data-testid="reasoning" data-live={live ? "true" : "false"}>
      <button
        type="button"
        className="reasoning-toggle"
        aria-expanded={open}
        aria-controls={id}
        onClick={() => {
          setOpen((o) => !o);
        }}
      >
        <span className={live ? "pulse" : undefined}>{live ? t("thinking") : t("reasoning")}</span>
        <span className={`chevron${open ? " open" : ""}`}>
          <Icon name="right" size={14} />
        </span>
      </button>
      <div id={id} ref={body} className="reasoning-body" hidden={!open} aria-label={t("reasoning")} role="region">
        {text}
      </div>
    </div>
  );
}
