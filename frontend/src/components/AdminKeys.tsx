/** Admin: client keys — the list (limits, usage, dates, revoke) and the form that creates one. */

import { useCallback, useState } from "react";
import {
  EMPTY_KEY_FORM,
  keyCreateBody,
  type AdminApi,
  type ClientKey,
  type KeyForm,
  type KeyFormField,
} from "../api/admin";
import {
  formatDateTime,
  formatKeyUsage,
  formatLimits,
  formatMoney,
  formatSpend,
  keyState,
} from "../api/adminFormat";
import { useLocale, useT, type T } from "../i18n";
import type { MessageKey } from "../i18n/messages";
import { copyText } from "../lib/clipboard";
import { AdminSection, ConfirmButton, ErrorNote, LabeledInput, TableFrame } from "./AdminParts";
import { useAdmin, useResource } from "./adminHooks";
import { Icon } from "./Icon";

const FIELD_LABELS: Record<KeyFormField, MessageKey> = {
  name: "adminKeyName",
  rpm: "adminRpmLabel",
  tpm: "adminTpmLabel",
  budget: "adminBudgetLabel",
  budgetCost: "adminBudgetCostLabel",
  models: "adminModelsLabel",
  expiresDays: "adminExpiresLabel",
};

const STATE_LABELS = { active: "adminKeyActive", revoked: "adminKeyRevoked", expired: "adminKeyExpired" } as const;

/** The secret of a key just made: shown this once, with a copy button. */
function NewSecret({ name, secret, onDone }: { name: string; secret: string; onDone: () => void }) {
  const t = useT();
  const [copied, setCopied] = useState(false);
  return (
    <div className="admin-secret" role="status">
      <p className="admin-secret-title">{t("adminNewKeyTitle", { name })}</p>
      <p className="admin-secret-warning">
        <strong>{t("adminNewKeyWarning")}</strong>
      </p>
      <div className="admin-secret-row">
        <code className="admin-secret-value" aria-label={t("adminNewKeyValue")}>
          {secret}
        </code>
        <button
          type="button"
          className="btn"
          onClick={() => {
            void copyText(secret).then(setCopied);
          }}
        >
          <Icon name={copied ? "check" : "copy"} size={14} /> {copied ? t("copied") : t("adminCopyKey")}
        </button>
      </div>
      <button type="button" className="btn primary" onClick={onDone}>
        {t("adminDone")}
      </button>
    </div>
  );
}

function TextField({
  field,
  form,
  setForm,
  invalid,
  hint,
  type = "text",
}: {
  field: KeyFormField;
  form: KeyForm;
  setForm: (f: KeyForm) => void;
  invalid: boolean;
  hint?: string;
  type?: "text" | "number";
}) {
  const t = useT();
  return (
    <LabeledInput
      name={field}
      label={t(FIELD_LABELS[field])}
      value={form[field]}
      onChange={(value) => {
        setForm({ ...form, [field]: value });
      }}
      invalid={invalid}
      hint={hint}
      type={type}
      required={field === "name"}
      step={field === "expiresDays" || field === "budgetCost" ? "any" : undefined}
    />
  );
}

function CreateKey({ onCreated }: { onCreated: () => void }) {
  const t = useT();
  const { api } = useAdmin();
  const [form, setForm] = useState<KeyForm>(EMPTY_KEY_FORM);
  const [bad, setBad] = useState<KeyFormField | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState<{ name: string; secret: string } | null>(null);
  if (made) {
    return (
      <NewSecret
        name={made.name}
        secret={made.secret}
        onDone={() => {
          setMade(null);
        }}
      />
    );
  }
  const field = (name: KeyFormField, type: "text" | "number" = "number", hint?: string) => (
    <TextField field={name} form={form} setForm={setForm} invalid={bad === name} type={type} hint={hint} />
  );
  return (
    <form
      className="admin-form"
      aria-label={t("adminCreateKey")}
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        const built = keyCreateBody(form);
        if ("field" in built) {
          setBad(built.field);
          setError(t("adminBadField", { field: t(FIELD_LABELS[built.field]) }));
          return;
        }
        setBad(null);
        setError(null);
        setBusy(true);
        api.createKey(built.body).then(
          ({ key, secret }) => {
            setBusy(false);
            setForm(EMPTY_KEY_FORM);
            setMade({ name: key.name, secret });
            onCreated();
          },
          (err: unknown) => {
            setBusy(false);
            setError(err instanceof Error ? err.message : String(err));
          },
        );
      }}
    >
      <h3>{t("adminCreateKey")}</h3>
      <div className="admin-form-grid">
        {field("name", "text")}
        {field("rpm")}
        {field("tpm")}
        {field("budget")}
        {field("budgetCost")}
        {field("models", "text", t("adminModelsHint"))}
        {field("expiresDays")}
      </div>
      <p className="admin-hint">{t("adminLimitsHint")}</p>
      <ErrorNote error={error} />
      <button type="submit" className="btn primary" disabled={busy}>
        {t("adminCreateKeyButton")}
      </button>
    </form>
  );
}

function KeyRow({ k, t, locale, onRevoke }: { k: ClientKey; t: T; locale: string; onRevoke: (k: ClientKey) => Promise<void> }) {
  const state = keyState(k);
  return (
    <tr data-key-id={k.id} data-state={state}>
      <th scope="row">{k.name}</th>
      <td>
        <code>{k.prefix}…</code>
      </td>
      <td>
        {formatLimits(k, locale) || t("adminNoLimits")}
        <br />
        <small>{k.models ? k.models.join(", ") : t("adminAllModels")}</small>
      </td>
      <td className="num">{formatKeyUsage(k, locale)}</td>
      <td className="num" data-spend>
        {formatSpend(k, locale)}
        <br />
        <small>{formatMoney(k.saved, locale) || "0"}</small>
      </td>
      <td className="date">{formatDateTime(k.createdAt, locale)}</td>
      <td className="date">{k.expiresAt ? formatDateTime(k.expiresAt, locale) : t("adminNever")}</td>
      <td>
        <span className={`admin-badge state-${state}`}>{t(STATE_LABELS[state])}</span>
      </td>
      <td>
        {state === "revoked" ? null : (
          <ConfirmButton
            label={t("adminRevoke")}
            question={t("adminConfirmRevoke", { name: k.name })}
            confirmLabel={t("adminRevoke")}
            onConfirm={() => onRevoke(k)}
          />
        )}
      </td>
    </tr>
  );
}

export function KeysSection() {
  const t = useT();
  const locale = useLocale();
  const { api } = useAdmin();
  const load = useCallback((a: AdminApi) => a.keys(), []);
  const keys = useResource(load);
  const [error, setError] = useState<string | null>(null);
  const revoke = async (k: ClientKey) => {
    setError(null);
    try {
      await api.revokeKey(k.id);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
    keys.reload();
  };
  return (
    <AdminSection id="admin-keys" title={t("adminKeysTitle")} busy={keys.loading} onRefresh={keys.reload}>
      <ErrorNote error={keys.error ?? error} />
      {keys.data && keys.data.length === 0 ? <p className="empty-note">{t("adminNoKeys")}</p> : null}
      {keys.data?.length ? (
        <TableFrame label={t("adminKeysTitle")}>
          <thead>
            <tr>
              <th scope="col">{t("adminKeyName")}</th>
              <th scope="col">{t("adminKeyPrefix")}</th>
              <th scope="col">{t("adminKeyLimits")}</th>
              <th scope="col" className="num">{t("adminKeyUsage")}</th>
              <th scope="col" className="num">{t("adminSpendSaved")}</th>
              <th scope="col">{t("adminKeyCreated")}</th>
              <th scope="col">{t("adminKeyExpires")}</th>
              <th scope="col">{t("adminKeyStatus")}</th>
              <th scope="col">
                <span className="sr-only">{t("adminKeyActions")}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.data.map((k) => (
              <KeyRow key={k.id} k={k} t={t} locale={locale} onRevoke={revoke} />
            ))}
          </tbody>
        </TableFrame>
      ) : null}
      <CreateKey onCreated={keys.reload} />
    </AdminSection>
  );
}
