/**
 * How full the model's context window is for this chat: the newest answer's prompt against the
 * window (lib/contextGauge). It reads finished messages only — never the stream buffer — so it
 * renders once per answer, not per token. Hidden while the figures are unknown.
 */

import { useMemo } from "react";
import type { Message } from "../api/types";
import { useLocale, useT } from "../i18n";
import { contextGauge } from "../lib/contextGauge";
import { threadOf } from "../lib/tree";
import { useChat, type ChatState } from "../store/chat";

const NO_THREAD: readonly Message[] = [];
const BAR = 40;

function activeThread(s: ChatState): readonly Message[] {
  if (s.activeId === null) return NO_THREAD;
  const map = s.messages.get(s.activeId);
  if (!map?.size) return NO_THREAD;
  // threadOf memoises per message map and leaf: the same array until either changes.
  return threadOf(map, s.conversations.find((c) => c.id === s.activeId)?.leafId ?? null);
}

export function ContextGauge() {
  const t = useT();
  const locale = useLocale();
  const thread = useChat(activeThread);
  const models = useChat((s) => s.models);
  const gauge = useMemo(
    () => contextGauge(thread, (model) => models.find((m) => m.id === model)?.contextWindow),
    [thread, models],
  );
  if (!gauge) return null;
  const n = new Intl.NumberFormat(locale === "zh" ? "zh-CN" : locale);
  const lines = [
    t("contextFigures", { used: n.format(gauge.used), window: n.format(gauge.window), percent: gauge.percent }),
  ];
  if (gauge.budget !== null) lines.push(t("contextBudget", { budget: n.format(gauge.budget) }));
  if (gauge.estimated) lines.push(t("contextEstimated"));
  if (gauge.dropped + gauge.summarised > 0) {
    lines.push(t("contextTrimmed", { dropped: gauge.dropped, summarised: gauge.summarised }));
  }
  const text = lines.join(" · ");
  return (
    <div
      className="ctx-gauge"
      data-level={gauge.level}
      data-testid="context-gauge"
      role="meter"
      aria-label={t("contextGauge")}
      aria-valuemin={0}
      aria-valuemax={gauge.window}
      aria-valuenow={Math.min(gauge.used, gauge.window)}
      aria-valuetext={text}
      title={`${t("contextGauge")}: ${text}`}
      // Focusable, so the figures are reachable from the keyboard too (the title shows on hover).
      tabIndex={0}
    >
      <svg className="ctx-bar" width={BAR} height={6} viewBox={`0 0 ${BAR} 6`} aria-hidden="true" focusable="false">
        <rect className="ctx-track" width={BAR} height={6} rx={3} />
        <rect className="ctx-fill" width={Math.max(gauge.ratio * BAR, 2)} height={6} rx={3} />
      </svg>
      <span className="ctx-pct">{gauge.percent}%</span>
    </div>
  );
}
