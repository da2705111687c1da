/** Per-chat settings: presets, model, system prompt, temperature, max tokens (the draft before the
 * first message). */

import { useId, useState } from "react";
import type { ChatSettings } from "../api/types";
import { useT } from "../i18n";
import { store, useChat } from "../store/chat";
import { Icon } from "./Icon";
import { PresetPicker } from "./Presets";

function useSettings(): ChatSettings {
  const activeId = useChat((s) => s.activeId);
  const conv = useChat((s) => (activeId === null ? null : (s.conversations.find((c) => c.id === activeId) ?? null)));
  const draft = useChat((s) => s.draft);
  return conv?.settings ?? draft;
}

export function ModelPicker() {
  const t = useT();
  const models = useChat((s) => s.models);
  const error = useChat((s) => s.modelsError);
  const { model } = useSettings();
  const ids = models.map((m) => m.id);
  if (model && !ids.includes(model)) ids.unshift(model);
  const blind = new Set(models.filter((m) => m.vision === false).map((m) => m.id));
  return (
    <label className="model-picker">
      <span className="sr-only">{t("model")}</span>
      <select
        value={model}
        aria-label={t("model")}
        title={error ? t("modelsUnavailable", { error }) : t("model")}
        onChange={(e) => {
          store.updateSettings({ model: e.target.value });
        }}
      >
        {ids.length === 0 ? <option value="">{t("loading")}</option> : null}
        {ids.map((id) => (
          <option key={id} value={id} data-vision={blind.has(id) ? "no" : undefined}>
            {blind.has(id) ? t("textOnly", { model: id }) : id}
          </option>
        ))}
      </select>
    </label>
  );
}

/** A text field that saves when it loses focus (not per keystroke). */
function SystemPrompt({ value }: { value: string }) {
  const t = useT();
  const id = useId();
  const [text, setText] = useState(value);
  const [seen, setSeen] = useState(value);
  if (value !== seen) {
    setSeen(value);
    setText(value);
  }
  return (
    <div className="field">
      <label htmlFor={id}>{t("systemPrompt")}</label>
      <textarea
        id={id}
        rows={4}
        value={text}
        aria-describedby={`${id}-hint`}
        onChange={(e) => {
          setText(e.target.value);
        }}
        onBlur={() => {
          if (text !== value) store.updateSettings({ systemPrompt: text });
        }}
      />
      <small id={`${id}-hint`}>{t("systemPromptHint")}</small>
    </div>
  );
}

export function SettingsPanel({ onClose }: { onClose: () => void }) {
  const t = useT();
  const s = useSettings();
  const tempId = useId();
  const maxId = useId();
  return (
    <section
      className="settings"
      aria-label={t("settings")}
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.stopPropagation();
          onClose();
        }
      }}
    >
      <div className="settings-head">
        <h2>{t("settings")}</h2>
        <button type="button" className="icon-btn" aria-label={t("closeSettings")} onClick={onClose}>
          <Icon name="close" />
        </button>
      </div>
      <PresetPicker />
      <SystemPrompt value={s.systemPrompt} />
      <div className="field">
        <label htmlFor={tempId}>
          {t("temperature")}: <output>{s.temperature === null ? t("useDefault") : s.temperature.toFixed(1)}</output>
        </label>
        <div className="row">
          <input
            id={tempId}
            type="range"
            min={0}
            max={2}
            step={0.1}
            value={s.temperature ?? 1}
            disabled={s.temperature === null}
            onChange={(e) => {
              store.updateSettings({ temperature: Number(e.target.value) });
            }}
          />
          <label className="check">
            <input
              type="checkbox"
              checked={s.temperature === null}
              onChange={(e) => {
                store.updateSettings({ temperature: e.target.checked ? null : 1 });
              }}
            />
            {t("useDefault")}
          </label>
        </div>
      </div>
      <div className="field">
        <label htmlFor={maxId}>{t("maxTokens")}</label>
        <input
          id={maxId}
          type="number"
          min={1}
          step={1}
          inputMode="numeric"
          placeholder={t("noLimit")}
          value={s.maxTokens ?? ""}
          onChange={(e) => {
            const n = Number.parseInt(e.target.value, 10);
            store.updateSettings({ maxTokens: Number.isFinite(n) && n > 0 ? n : null });
          }}
        />
      </div>
    </section>
  );
}
