/** The passages an answer drew on: one chip per source; a click shows the passage (as text). */

import { useRef, useState } from "react";
import { passage, type Citation } from "../api/files";
import { useT } from "../i18n";

function label(c: Citation, page: string): string {
  return c.page === null ? c.name : `${c.name}, ${page}`;
}

export function Citations({ citations }: { citations: readonly Citation[] }) {
  const t = useT();
  const [open, setOpen] = useState<number | null>(null);
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const asked = useRef(0);
  const shown = open === null ? null : (citations[open] ?? null);

  const show = (i: number | null) => {
    const seq = ++asked.current;
    setOpen(i);
    setText(null);
    setError(null);
    const c = i === null ? null : citations[i];
    if (!c) return;
    passage(c.fileId, c.n).then(
      (p) => {
        if (seq === asked.current) setText(p.text);
      },
      (e: unknown) => {
        // The passage the answer carried is still known: show it, and say why it was not read.
        if (seq !== asked.current) return;
        setText(c.text || null);
        setError(e instanceof Error ? e.message : String(e));
      },
    );
  };

  if (!citations.length) return null;
  return (
    <div className="citations">
      <span className="citations-title">{t("sources")}</span>
      <ul>
        {citations.map((c, i) => (
          <li key={`${c.fileId}-${c.n}`}>
            <button
              type="button"
              className="cite-chip"
              aria-expanded={open === i}
              onClick={() => {
                show(open === i ? null : i);
              }}
            >
              {label(c, t("page", { page: c.page ?? 0 }))}
            </button>
          </li>
        ))}
      </ul>
      {shown ? (
        <div
          className="passage-popover"
          role="dialog"
          aria-label={label(shown, t("page", { page: shown.page ?? 0 }))}
          onKeyDown={(e) => {
            if (e.key === "Escape") {
              e.stopPropagation();
              show(null);
            }
          }}
        >
          <div className="passage-head">
            <strong>{label(shown, t("page", { page: shown.page ?? 0 }))}</strong>
            <button
              type="button"
              className="icon-btn"
              aria-label={t("close")}
              // The popover takes the focus so Escape closes it.
              autoFocus
              onClick={() => {
                show(null);
              }}
            >
              ×
            </button>
          </div>
          {text === null && !error ? <p className="passage-text">{t("loading")}</p> : null}
          {text !== null ? <p className="passage-text">{text}</p> : null}
          {error ? <p className="msg-error">{error}</p> : null}
        </div>
      ) : null}
    </div>
  );
}
