/**
 * Side by side: the answers of two or three models to one message, in columns, each streaming
 * on its own. "Keep this answer" makes that one the conversation's branch (the others stay as
 * its siblings, reachable with the version switcher).
 */

import { memo } from "react";
import { useT } from "../i18n";
import { store, useChat, type Comparison } from "../store/chat";
import { MessageItem } from "./MessageItem";

export const SideBySide = memo(function SideBySide({ comparison }: { comparison: Comparison }) {
  const t = useT();
  const generation = useChat((s) => s.generation);
  const busy = generation?.conversationId === comparison.conversationId;
  return (
    <section className="side-by-side" aria-label={t("sideBySide")} data-columns={comparison.answers.length}>
      {comparison.answers.map((m) => {
        const live = generation?.answers.find((a) => a.assistantId === m.id) ?? null;
        return (
          <div className="sbs-column" key={m.id} data-model={m.model ?? ""}>
            <MessageItem
              message={m}
              busy={generation !== null}
              buffer={live ? live.buffer : null}
              branchIndex={0}
              branchTotal={1}
              prevId={null}
              nextId={null}
            />
            <button
              type="button"
              className="btn keep-btn"
              disabled={busy}
              onClick={() => {
                void store.keep(comparison.conversationId, m.id);
              }}
            >
              {t("keepAnswer", { model: m.model ?? t("assistant") })}
            </button>
          </div>
        );
      })}
    </section>
  );
});

/** Choose 2–3 models to answer the next message side by side (none: the chat's model alone). */
export function CompareChooser({ chosen, onChange }: { chosen: readonly string[]; onChange: (models: string[]) => void }) {
  const t = useT();
  const models = useChat((s) => s.models);
  return (
    <fieldset className="compare-chooser">
      <legend>{t("compareModels")}</legend>
      {models.map((m) => {
        const on = chosen.includes(m.id);
        return (
          <label key={m.id} className="compare-option">
            <input
              type="checkbox"
              checked={on}
              disabled={!on && chosen.length >= 3}
              onChange={() => {
                onChange(on ? chosen.filter((x) => x !== m.id) : [...chosen, m.id]);
              }}
            />
            {m.id}
          </label>
        );
      })}
      <p className="hint">{chosen.length === 1 ? t("compareNeedsTwo") : t("compareHint")}</p>
    </fieldset>
  );
}
