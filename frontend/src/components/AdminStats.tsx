/** Admin: usage per key, per user and per model/day, cache tiers (and flush), upstream key health. */

import { useCallback, useId, useState } from "react";
import {
  type AdminApi,
  type Counters,
  type Period,
  type UsageReport,
} from "../api/admin";
import {
  formatBytes,
  formatCount,
  formatPercent,
} from "../api/adminFormat";
import { useLocale, useT } from "../i18n";
import type { MessageKey } from "../i18n/messages";
import { AdminSection, ConfirmButton, ErrorNote, TableFrame } from "./AdminParts";
import { useAdmin, useResource } from "./adminHooks";

const PERIODS: Record<Period, MessageKey> = {
  today: "adminPeriodToday",
  "7d": "adminPeriod7d",
  "30d": "adminPeriod30d",
  all: "adminPeriodAll",
};

function CounterHeads() {
  const t = useT();
  return (
    <>
      <th scope="col" className="num">{t("adminRequests")}</th>
      <th scope="col" className="num">{t("adminPromptTokens")}</th>
      <th scope="col" className="num">{t("adminCompletionTokens")}</th>
      <th scope="col" className="num">{t("adminTotalTokens")}</th>
    </>
  );
}

function CounterCells({ c }: { c: Counters }) {
  const locale = useLocale();
  return (
    <>
      <td className="num">{formatCount(c.requests, locale)}</td>
      <td className="num">{formatCount(c.promptTokens, locale)}</td>
      <td className="num">{formatCount(c.completionTokens, locale)}</td>
      <td className="num">{formatCount(c.totalTokens, locale)}</td>
    </>
  );
}

function UsageTables({ report }: { report: UsageReport }) {
  const t = useT();
  const names = new Map(report.totals.map((r) => [r.keyId, r.name]));
  const keyName = (id: string | null) => (id === null ? t("adminAnonymous") : (names.get(id) ?? id));
  const userNames = new Map(report.users.map((r) => [r.userId, r.name]));
  const userName = (id: string | null) => (id === null ? t("adminNoUser") : (userNames.get(id) ?? id));
  if (!report.totals.length && !report.days.length) return <p className="empty-note">{t("adminNoUsage")}</p>;
  return (
    <>
      <h3>{t("adminUsageByKey")}</h3>
      <TableFrame label={t("adminUsageByKey")}>
        <thead>
          <tr>
            <th scope="col">{t("adminUsageKey")}</th>
            <CounterHeads />
          </tr>
        </thead>
        <tbody>
          {report.totals.map((r) => (
            <tr key={r.keyId ?? ""} data-key-id={r.keyId ?? ""}>
              <th scope="row">{keyName(r.keyId)}</th>
              <CounterCells c={r} />
            </tr>
          ))}
        </tbody>
      </TableFrame>
      <h3>{t("adminUsageByUser")}</h3>
      <TableFrame label={t("adminUsageByUser")}>
        <thead>
          <tr>
            <th scope="col">{t("adminUsageUser")}</th>
            <CounterHeads />
          </tr>
        </thead>
        <tbody>
          {report.users.map((r) => (
            <tr key={r.userId ?? ""} data-user-id={r.userId ?? ""}>
              <th scope="row">{userName(r.userId)}</th>
              <CounterCells c={r} />
            </tr>
          ))}
        </tbody>
      </TableFrame>
      <h3>{t("adminUsageByDay")}</h3>
      <TableFrame label={t("adminUsageByDay")}>
        <thead>
          <tr>
            <th scope="col">{t("adminDay")}</th>
            <th scope="col">{t("adminUsageKey")}</th>
            <th scope="col">{t("adminUsageUser")}</th>
            <th scope="col">{t("model")}</th>
            <CounterHeads />
          </tr>
        </thead>
        <tbody>
          {report.days.map((r) => (
            <tr
              key={`${r.day}|${r.keyId ?? ""}|${r.userId ?? ""}|${r.model}`}
              data-key-id={r.keyId ?? ""}
              data-user-id={r.userId ?? ""}
            >
              <td>{r.day}</td>
              <th scope="row">{keyName(r.keyId)}</th>
              <td>{userName(r.userId)}</td>
              <td>{r.model}</td>
              <CounterCells c={r} />
            </tr>
          ))}
        </tbody>
      </TableFrame>
    </>
  );
}

export function UsageSection() {
  const t = useT();
  const id = useId();
  const [period, setPeriod] = useState<Period>("7d");
  const load = useCallback((a: AdminApi) => a.usage(period), [period]);
  const usage = useResource(load);
  return (
    <AdminSection id="admin-usage" title={t("adminUsageTitle")} busy={usage.loading} onRefresh={usage.reload}>
      <div className="admin-toolbar">
        <label htmlFor={id}>{t("adminPeriod")}</label>
        <select
          id={id}
          value={period}
          onChange={(e) => {
            setPeriod(e.target.value as Period);
          }}
        >
          {Object.entries(PERIODS).map(([value, label]) => (
            <option key={value} value={value}>
              {t(label)}
            </option>
          ))}
        </select>
      </div>
      <ErrorNote error={usage.error} />
      {usage.data ? <UsageTables report={usage.data} /> : null}
    </AdminSection>
  );
}

export function CacheSection() {
  const t = useT();
  const locale = useLocale();
  const { api } = useAdmin();
  const load = useCallback((a: AdminApi) => a.cache(), []);
  const cache = useResource(load);
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const stats = cache.data;
  return (
    <AdminSection id="admin-cache" title={t("adminCacheTitle")} busy={cache.loading} onRefresh={cache.reload}>
      <ErrorNote error={cache.error ?? error} />
      {stats && !stats.enabled ? <p className="empty-note">{t("adminCacheOff")}</p> : null}
      {stats?.enabled ? (
        <>
          <TableFrame label={t("adminCacheTitle")}>
            <thead>
              <tr>
                <th scope="col">{t("adminCacheTier")}</th>
                <th scope="col" className="num">{t("adminCacheEntries")}</th>
                <th scope="col" className="num">{t("adminCacheSize")}</th>
                <th scope="col" className="num">{t("adminCacheHits")}</th>
                <th scope="col" className="num">{t("adminCacheMisses")}</th>
                <th scope="col" className="num">{t("adminCacheHitRatio")}</th>
              </tr>
            </thead>
            <tbody>
              {stats.tiers.map((tier) => (
                <tr key={tier.name} data-tier={tier.name}>
                  <th scope="row">{tier.name}</th>
                  <td className="num" data-entries={tier.entries}>
                    {tier.approximate ? "≥ " : ""}
                    {formatCount(tier.entries, locale)}
                  </td>
                  <td className="num">{formatBytes(tier.bytes, locale)}</td>
                  <td className="num">{formatCount(tier.hits, locale)}</td>
                  <td className="num">{formatCount(tier.misses, locale)}</td>
                  <td className="num">{formatPercent(tier.hitRatio, locale)}</td>
                </tr>
              ))}
            </tbody>
          </TableFrame>
          <p className="admin-hint">{t("adminCacheInFlight", { n: stats.inFlight })}</p>
          <div className="admin-toolbar">
            <ConfirmButton
              label={t("adminFlushCache")}
              question={t("adminConfirmFlush")}
              confirmLabel={t("adminFlush")}
              onConfirm={async () => {
                setError(null);
                setNote(null);
                try {
                  setNote(t("adminFlushed", { n: formatCount(await api.flushCache(), locale) }));
                } catch (e) {
                  setError(e instanceof Error ? e.message : String(e));
                }
                cache.reload();
              }}
            />
            <span role="status" className="admin-hint">
              {note}
            </span>
          </div>
        </>
      ) : null}
    </AdminSection>
  );
}

export function UpstreamsSection() {
  const t = useT();
  const locale = useLocale();
  const load = useCallback((a: AdminApi) => a.upstreams(), []);
  const upstreams = useResource(load);
  return (
    <AdminSection
      id="admin-upstreams"
      title={t("adminUpstreamsTitle")}
      busy={upstreams.loading}
      onRefresh={upstreams.reload}
    >
      <ErrorNote error={upstreams.error} />
      {upstreams.data && !upstreams.data.length ? <p className="empty-note">{t("adminNoUpstreams")}</p> : null}
      {upstreams.data?.length ? (
        <TableFrame label={t("adminUpstreamsTitle")}>
          <thead>
            <tr>
              <th scope="col">{t("adminProvider")}</th>
              <th scope="col">{t("adminUpstreamKey")}</th>
              <th scope="col">{t("adminKeyState")}</th>
              <th scope="col" className="num">{t("adminInFlight")}</th>
              <th scope="col" className="num">{t("adminSuccesses")}</th>
              <th scope="col" className="num">{t("adminFailures")}</th>
              <th scope="col" className="num">{t("adminRateLimited")}</th>
              <th scope="col">{t("adminLastError")}</th>
              <th scope="col">{t("adminQueue")}</th>
            </tr>
          </thead>
          <tbody>
            {upstreams.data.map((p) => {
              const queue = p.queue
                ? t("adminQueueState", {
                    inFlight: p.queue.inFlight,
                    max: p.queue.maxConcurrency,
                    depth: p.queue.depth,
                    maxQueue: p.queue.maxQueue,
                  })
                : "—";
              const provider = (
                <th scope="row" rowSpan={Math.max(p.keys.length, 1)}>
                  {p.name}
                  <br />
                  <small>
                    {p.type}
                    {p.baseUrl ? ` · ${p.baseUrl}` : ""}
                  </small>
                </th>
              );
              if (!p.keys.length) {
                return (
                  <tr key={p.name} data-provider={p.name}>
                    {provider}
                    <td colSpan={7} className="admin-muted">
                      {t("adminNoUpstreamKeys")}
                    </td>
                    <td>{queue}</td>
                  </tr>
                );
              }
              return p.keys.map((k, i) => (
                <tr key={`${p.name}|${String(i)}`} data-provider={p.name}>
                  {i === 0 ? provider : null}
                  <td>
                    <code>{k.key}</code>
                  </td>
                  <td>
                    <span className={`admin-badge upstream-${k.state}`}>{k.state}</span>
                    {k.cooldown > 0 ? <small> {t("adminCooldownLeft", { s: formatCount(k.cooldown, locale) })}</small> : null}
                  </td>
                  <td className="num">{formatCount(k.inFlight, locale)}</td>
                  <td className="num">{formatCount(k.successes, locale)}</td>
                  <td className="num">{formatCount(k.failures, locale)}</td>
                  <td className="num">{formatCount(k.rateLimited, locale)}</td>
                  <td className="admin-muted">{k.lastError ?? ""}</td>
                  {i === 0 ? <td rowSpan={p.keys.length}>{queue}</td> : null}
                </tr>
              ));
            })}
          </tbody>
        </TableFrame>
      ) : null}
    </AdminSection>
  );
}
