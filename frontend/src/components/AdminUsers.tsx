/** Admin: chat users — their usage, budget, rate limits and models, and the form that sets them. */

import { useCallback, useState } from "react";
import {
  userLimitsBody,
  userLimitsForm,
  type AdminApi,
  type ChatUser,
  type UserLimitsField,
  type UserLimitsForm,
} from "../api/admin";
import {
  formatCount,
  formatKeyUsage,
  formatLimits,
  formatMoney,
  formatSpend,
} from "../api/adminFormat";
import { useLocale, useT, type T } from "../i18n";
import type { MessageKey } from "../i18n/messages";
import { AdminSection, ErrorNote, LabeledInput, TableFrame } from "./AdminParts";
import { useAdmin, useResource } from "./adminHooks";

const FIELD_LABELS: Record<UserLimitsField, MessageKey> = {
  rpm: "adminRpmLabel",
  tpm: "adminTpmLabel",
  budget: "adminBudgetLabel",
  budgetCost: "adminBudgetCostLabel",
  models: "adminModelsLabel",
};

/** The users' table: usage (all time), budget, rate limits, models, and an Edit button each. */
export function UsersTable({
  users,
  t,
  locale,
  onEdit,
}: {
  users: ChatUser[];
  t: T;
  locale: string;
  onEdit: (u: ChatUser) => void;
}) {
  return (
    <TableFrame label={t("adminUsersTitle")}>
      <thead>
        <tr>
          <th scope="col">{t("adminUserName")}</th>
          <th scope="col" className="num">{t("adminRequests")}</th>
          <th scope="col" className="num">{t("adminUserTokens")}</th>
          <th scope="col" className="num">{t("adminUserBudget")}</th>
          <th scope="col" className="num">{t("adminSpendSaved")}</th>
          <th scope="col">{t("adminUserRates")}</th>
          <th scope="col">{t("adminUserModels")}</th>
          <th scope="col">
            <span className="sr-only">{t("adminKeyActions")}</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {users.map((u) => (
          <tr key={u.id} data-user-id={u.id}>
            <th scope="row">
              {u.name}
              {u.isAdmin ? <> <span className="admin-badge">{t("adminUserAdmin")}</span></> : null}
              {u.implicit ? (
                <>
                  <br />
                  <small>{t("adminUserImplicit")}</small>
                </>
              ) : null}
            </th>
            <td className="num">{formatCount(u.usage.requests, locale)}</td>
            <td className="num">{formatCount(u.usage.totalTokens, locale)}</td>
            <td className="num" data-budget={u.budgetTokens ?? ""}>
              {u.budgetTokens === null ? t("adminNoBudget") : formatKeyUsage(u, locale)}
            </td>
            <td className="num" data-spend>
              {formatSpend(u, locale)}
              <br />
              <small>{formatMoney(u.saved, locale) || "0"}</small>
            </td>
            <td>{formatLimits(u, locale) || t("adminNoLimits")}</td>
            <td>{u.models ? u.models.join(", ") : t("adminAllModels")}</td>
            <td>
              <button
                type="button"
                className="btn"
                aria-label={t("adminEditLimitsOf", { name: u.name })}
                onClick={() => {
                  onEdit(u);
                }}
              >
                {t("adminEditLimits")}
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </TableFrame>
  );
}

/** A user's limits, filled with the current ones; Save sends them all (empty clears one). */
export function LimitsForm({
  user,
  onSaved,
  onCancel,
}: {
  user: ChatUser;
  onSaved: (u: ChatUser) => void;
  onCancel: () => void;
}) {
  const t = useT();
  const { api } = useAdmin();
  const [form, setForm] = useState<UserLimitsForm>(() => userLimitsForm(user));
  const [bad, setBad] = useState<UserLimitsField | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const title = t("adminLimitsOf", { name: user.name });
  const field = (name: UserLimitsField, type: "text" | "number" = "number", hint?: string) => (
    <LabeledInput
      name={name}
      label={t(FIELD_LABELS[name])}
      value={form[name]}
      onChange={(value) => {
        setForm({ ...form, [name]: value });
      }}
      invalid={bad === name}
      hint={hint}
      type={type}
      step={name === "budgetCost" ? "any" : undefined}
      autoFocus={name === "rpm"}
    />
  );
  return (
    <form
      className="admin-form"
      aria-label={title}
      data-user-id={user.id}
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        const built = userLimitsBody(form);
        if ("field" in built) {
          setBad(built.field);
          setError(t("adminBadField", { field: t(FIELD_LABELS[built.field]) }));
          return;
        }
        setBad(null);
        setError(null);
        setBusy(true);
        api.updateUser(user.id, built.body).then(
          (updated) => {
            setBusy(false);
            onSaved(updated);
          },
          (err: unknown) => {
            setBusy(false);
            setError(err instanceof Error ? err.message : String(err));
          },
        );
      }}
    >
      <h3>{title}</h3>
      <div className="admin-form-grid">
        {field("rpm")}
        {field("tpm")}
        {field("budget")}
        {field("budgetCost")}
        {field("models", "text", t("adminModelsHint"))}
      </div>
      <p className="admin-hint">{t("adminUserLimitsHint")}</p>
      <ErrorNote error={error} />
      <div className="admin-toolbar">
        <button type="submit" className="btn primary" disabled={busy}>
          {t("save")}
        </button>
        <button type="button" className="btn" onClick={onCancel}>
          {t("cancel")}
        </button>
      </div>
    </form>
  );
}

export function UsersSection() {
  const t = useT();
  const locale = useLocale();
  const load = useCallback((a: AdminApi) => a.users(), []);
  const users = useResource(load);
  const [editing, setEditing] = useState<ChatUser | null>(null);
  const [note, setNote] = useState<string | null>(null);
  return (
    <AdminSection id="admin-users" title={t("adminUsersTitle")} busy={users.loading} onRefresh={users.reload}>
      <ErrorNote error={users.error} />
      {users.data && users.data.length === 0 ? <p className="empty-note">{t("adminNoUsers")}</p> : null}
      {users.data?.length ? (
        <UsersTable
          users={users.data}
          t={t}
          locale={locale}
          onEdit={(u) => {
            setNote(null);
            setEditing(u);
          }}
        />
      ) : null}
      {editing ? (
        <LimitsForm
          // A fresh form (filled from that user) for each user edited.
          key={editing.id}
          user={editing}
          onSaved={(u) => {
            setEditing(null);
            setNote(t("adminLimitsSaved", { name: u.name }));
            users.reload();
          }}
          onCancel={() => {
            setEditing(null);
          }}
        />
      ) : null}
      <p role="status" className="admin-hint">
        {note}
      </p>
    </AdminSection>
  );
}
