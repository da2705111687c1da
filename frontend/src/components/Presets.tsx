/**
 * Presets of chat settings (lib/presets: kept in this browser's localStorage): pick one for the
 * chat on screen (or the next new chat), save the current settings under a name, rename, delete.
 */

import { useId, useState, useSyncExternalStore } from "react";
import type { ChatSettings } from "../api/types";
import { useT } from "../i18n";
import type { MessageKey } from "../i18n/messages";
import { PresetError, presets, type Preset } from "../lib/presets";
import { store } from "../store/chat";
import { Icon } from "./Icon";

const BUILTIN_NAMES: Record<string, MessageKey> = {
  "builtin:default": "presetDefault",
  "builtin:precise": "presetPrecise",
  "builtin:creative": "presetCreative",
};

const ERRORS: Record<PresetError["code"], MessageKey> = {
  empty: "presetNeedsName",
  taken: "presetNameTaken",
  builtin: "presetBuiltinFixed",
  missing: "presetMissing",
  full: "presetTooMany",
};

type Mode = "idle" | "save" | "rename" | "delete";

export function PresetPicker() {
  const t = useT();
  const id = useId();
  const list = useSyncExternalStore(presets.subscribe, presets.list, presets.list);
  const [selected, setSelected] = useState("");
  const [mode, setMode] = useState<Mode>("idle");
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState("");
  const chosen = list.find((p) => p.id === selected);
  const label = (p: Preset): string => {
    const key = BUILTIN_NAMES[p.id];
    return p.builtin && key ? t(key) : p.name;
  };
  const mine = list.filter((p) => !p.builtin);

  /** The change's result, or undefined with the reason shown. */
  const attempt = <R,>(change: () => R): R | undefined => {
    try {
      const out = change();
      setError(null);
      return out;
    } catch (e) {
      setError(e instanceof PresetError ? t(ERRORS[e.code]) : String(e));
      return undefined;
    }
  };
  const begin = (next: Mode) => {
    setMode(next);
    setError(null);
    setStatus("");
    setName(next === "rename" && chosen ? chosen.name : next === "save" && chosen && !chosen.builtin ? chosen.name : "");
  };
  const apply = () => {
    if (!chosen) return;
    // An empty model in a preset means "keep the chat's model".
    const { model, ...rest } = chosen.settings;
    const patch: Partial<ChatSettings> = model ? chosen.settings : rest;
    store.updateSettings(patch);
    setStatus(t("presetApplied", { name: label(chosen) }));
  };
  const submit = () => {
    if (mode === "save") {
      const saved = attempt(() => presets.save(name, store.settings()));
      if (saved) {
        setSelected(saved.id);
        setMode("idle");
        setStatus(t("presetSaved", { name: saved.name }));
      }
    } else if (mode === "rename" && chosen) {
      const done = attempt(() => {
        presets.rename(chosen.id, name);
        return true;
      });
      if (done) setMode("idle");
    }
  };

  return (
    <fieldset className="field presets">
      <legend>{t("presets")}</legend>
      <div className="row">
        <select
          id={`${id}-list`}
          aria-label={t("preset")}
          value={chosen ? selected : ""}
          onChange={(e) => {
            setSelected(e.target.value);
            setMode("idle");
            setError(null);
            setStatus("");
          }}
        >
          <option value="">{t("presetChoose")}</option>
          <optgroup label={t("presetBuiltin")}>
            {list.filter((p) => p.builtin).map((p) => (
              <option key={p.id} value={p.id}>
                {label(p)}
              </option>
            ))}
          </optgroup>
          {mine.length ? (
            <optgroup label={t("presetMine")}>
              {mine.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </optgroup>
          ) : null}
        </select>
        <button type="button" className="btn" disabled={!chosen} onClick={apply}>
          {t("presetApply")}
        </button>
        <button
          type="button"
          className="icon-btn"
          disabled={!chosen || chosen.builtin}
          aria-label={t("presetRename")}
          title={t("presetRename")}
          onClick={() => {
            begin("rename");
          }}
        >
          <Icon name="edit" />
        </button>
        <button
          type="button"
          className="icon-btn"
          disabled={!chosen || chosen.builtin}
          aria-label={t("presetDelete")}
          title={t("presetDelete")}
          onClick={() => {
            begin("delete");
          }}
        >
          <Icon name="trash" />
        </button>
      </div>
      {mode === "save" || mode === "rename" ? (
        <form
          className="row preset-form"
          onSubmit={(e) => {
            e.preventDefault();
            submit();
          }}
        >
          <input
            aria-label={t("presetName")}
            value={name}
            maxLength={60}
            placeholder={t("presetName")}
            // Focus moves into the field the user just opened.
            autoFocus
            onChange={(e) => {
              setName(e.target.value);
            }}
            onKeyDown={(e) => {
              if (e.key === "Escape") {
                e.stopPropagation();
                setMode("idle");
              }
            }}
          />
          <button type="submit" className="btn primary" disabled={!name.trim()}>
            {t("save")}
          </button>
          <button
            type="button"
            className="btn"
            onClick={() => {
              setMode("idle");
            }}
          >
            {t("cancel")}
          </button>
        </form>
      ) : mode === "delete" && chosen ? (
        <div className="row preset-form" role="group" aria-label={t("presetDelete")}>
          <span>{t("confirmDelete", { title: chosen.name })}</span>
          <button
            type="button"
            className="btn danger"
            onClick={() => {
              const done = attempt(() => {
                presets.remove(chosen.id);
                return true;
              });
              if (done) {
                setSelected("");
                setMode("idle");
              }
            }}
          >
            {t("delete")}
          </button>
          <button
            type="button"
            className="btn"
            onClick={() => {
              setMode("idle");
            }}
          >
            {t("cancel")}
          </button>
        </div>
      ) : (
        <div className="row">
          <button
            type="button"
            className="btn"
            onClick={() => {
              begin("save");
            }}
          >
            {t("presetSave")}
          </button>
          <small role="status">{status}</small>
        </div>
      )}
      {error ? (
        <p className="msg-error" role="alert">
          {error}
        </p>
      ) : null}
    </fieldset>
  );
}
