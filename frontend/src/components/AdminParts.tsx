/**
 * Pieces the admin page's sections share: a titled section, an in-page confirmation, a table
 * frame, a labelled form field.
 */

import { useId, useState, type ReactNode } from "react";
import { useT } from "../i18n";
import { Icon } from "./Icon";

/** A section with its heading and a Refresh button; `busy` marks it while it loads. */
export function AdminSection({
  id,
  title,
  busy,
  onRefresh,
  children,
}: {
  id: string;
  title: string;
  busy: boolean;
  onRefresh: () => void;
  children: ReactNode;
}) {
  const t = useT();
  // Headings give the page its structure; the only landmarks inside are the tables' frames.
  return (
    <section className="admin-section" id={id} aria-busy={busy}>
      <div className="admin-section-head">
        <h2>{title}</h2>
        <button type="button" className="btn" onClick={onRefresh} disabled={busy}>
          <Icon name="refresh" size={14} /> {t("adminRefresh")}
        </button>
      </div>
      {children}
    </section>
  );
}

/** A wide table scrolls sideways on its own (focusable, so the keyboard can scroll it too). */
export function TableFrame({ label, children }: { label: string; children: ReactNode }) {
  const captionId = useId();
  return (
    <div className="admin-table-wrap" role="region" aria-labelledby={captionId} tabIndex={0}>
      <table className="admin-table">
        <caption id={captionId} className="sr-only">
          {label}
        </caption>
        {children}
      </table>
    </div>
  );
}

export function ErrorNote({ error }: { error: string | null }) {
  const t = useT();
  if (!error) return null;
  return (
    <p role="alert" className="msg-error">
      {t("error")}: {error}
    </p>
  );
}

/**
 * A button that asks first, in the page (never a browser dialog): the question with a confirm
 * and a Cancel button, which takes focus as the safe choice.
 */
export function ConfirmButton({
  label,
  question,
  confirmLabel,
  onConfirm,
  disabled = false,
}: {
  label: string;
  question: string;
  confirmLabel: string;
  onConfirm: () => Promise<void> | void;
  disabled?: boolean;
}) {
  const t = useT();
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!asking) {
    return (
      <button
        type="button"
        className="btn"
        disabled={disabled}
        onClick={() => {
          setAsking(true);
        }}
      >
        {label}
      </button>
    );
  }
  return (
    <span className="admin-confirm" role="group" aria-label={question}>
      <span>{question}</span>
      <button
        type="button"
        className="btn danger"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          void Promise.resolve(onConfirm()).finally(() => {
            setBusy(false);
            setAsking(false);
          });
        }}
      >
        {confirmLabel}
      </button>
      <button
        type="button"
        className="btn"
        // Focus the safe choice first.
        autoFocus
        onClick={() => {
          setAsking(false);
        }}
      >
        {t("cancel")}
      </button>
    </span>
  );
}

/** A labelled input of an admin form, with an optional hint under it. */
export function LabeledInput({
  name,
  label,
  value,
  onChange,
  invalid,
  hint,
  type = "text",
  required = false,
  step,
  autoFocus = false,
}: {
  name: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  invalid: boolean;
  hint?: string;
  type?: "text" | "number";
  required?: boolean;
  step?: string;
  autoFocus?: boolean;
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        name={name}
        type={type}
        inputMode={type === "number" ? "numeric" : undefined}
        min={type === "number" ? 1 : undefined}
        step={step}
        required={required}
        autoFocus={autoFocus}
        aria-invalid={invalid || undefined}
        aria-describedby={hint ? `${id}-hint` : undefined}
        value={value}
        onChange={(e) => {
          onChange(e.target.value);
        }}
      />
      {hint ? <small id={`${id}-hint`}>{hint}</small> : null}
    </div>
  );
}
