/**
 * Named presets of chat settings (model, system prompt, temperature, max tokens).
 *
 * Stored in this browser's localStorage under "chatgate.presets" (not on the server, in both
 * modes): they follow the browser, not the account. Built-ins are constants, never stored, and
 * cannot be renamed or deleted; a built-in leaves out what it does not set (the model, say), so
 * applying it keeps the chat's own value there.
 */

import type { ChatSettings } from "../api/types";

export const PRESETS_KEY = "chatgate.presets";
export const MAX_NAME = 60;
export const MAX_PRESETS = 100;

export interface Preset {
  id: string;
  name: string;
  builtin: boolean;
  settings: Partial<ChatSettings>;
}

export const BUILTIN_PRESETS: readonly Preset[] = [
  {
    id: "builtin:default",
    name: "Default",
    builtin: true,
    settings: { systemPrompt: "", temperature: null, maxTokens: null },
  },
  { id: "builtin:precise", name: "Precise", builtin: true, settings: { temperature: 0.2 } },
  { id: "builtin:creative", name: "Creative", builtin: true, settings: { temperature: 1.0 } },
];

type KeyValue = Pick<Storage, "getItem" | "setItem">;

/** Why a change was refused; the UI says it in the reader's language. */
export class PresetError extends Error {
  constructor(readonly code: "empty" | "taken" | "builtin" | "missing" | "full") {
    super(`preset: ${code}`);
    this.name = "PresetError";
  }
}

const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Only the settings fields, well typed: what the file holds may be old or hand-edited. */
export function cleanSettings(raw: unknown): Partial<ChatSettings> {
  if (!raw || typeof raw !== "object") return {};
  const o = raw as Record<string, unknown>;
  const out: Partial<ChatSettings> = {};
  if (typeof o.model === "string") out.model = o.model;
  if (typeof o.systemPrompt === "string") out.systemPrompt = o.systemPrompt;
  if (o.temperature === null || (finite(o.temperature) && o.temperature >= 0 && o.temperature <= 2)) {
    out.temperature = o.temperature;
  }
  if (o.maxTokens === null || (finite(o.maxTokens) && o.maxTokens > 0)) out.maxTokens = o.maxTokens;
  return out;
}

function parse(text: string | null): Preset[] {
  if (!text) return [];
  try {
    const list: unknown = JSON.parse(text);
    if (!Array.isArray(list)) return [];
    const out: Preset[] = [];
    for (const p of list.slice(0, MAX_PRESETS)) {
      if (!p || typeof p !== "object") continue;
      const o = p as Record<string, unknown>;
      if (typeof o.id !== "string" || typeof o.name !== "string" || !o.name.trim()) continue;
      if (o.id.startsWith("builtin:")) continue;
      out.push({ id: o.id, name: o.name.slice(0, MAX_NAME), builtin: false, settings: cleanSettings(o.settings) });
    }
    return out;
  } catch {
    return [];
  }
}

export class PresetStore {
  private user: Preset[];
  private all: readonly Preset[];
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly storage: KeyValue | null,
    private readonly newId: () => string = () => `p-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
  ) {
    let text: string | null = null;
    try {
      text = storage?.getItem(PRESETS_KEY) ?? null;
    } catch {
      // storage blocked: built-ins only, saves live until the page closes
    }
    this.user = parse(text);
    this.all = [...BUILTIN_PRESETS, ...this.user];
  }

  /** Built-ins first, then the user's in the order saved. Same array until something changes. */
  readonly list = (): readonly Preset[] => this.all;

  readonly subscribe = (l: () => void): (() => void) => {
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  };

  get(id: string): Preset | undefined {
    return this.all.find((p) => p.id === id);
  }

  /** Save settings under a name; a user preset of the same name is overwritten. */
  save(name: string, settings: ChatSettings): Preset {
    const clean = checkName(name);
    const existing = this.user.find((p) => p.name === clean);
    const preset: Preset = { id: existing?.id ?? this.newId(), name: clean, builtin: false, settings: cleanSettings(settings) };
    if (!existing && this.user.length >= MAX_PRESETS) throw new PresetError("full");
    this.commit(existing ? this.user.map((p) => (p.id === preset.id ? preset : p)) : [...this.user, preset]);
    return preset;
  }

  rename(id: string, name: string): void {
    const clean = checkName(name);
    const target = this.own(id);
    if (this.user.some((p) => p.name === clean && p.id !== id)) throw new PresetError("taken");
    this.commit(this.user.map((p) => (p.id === target.id ? { ...p, name: clean } : p)));
  }

  remove(id: string): void {
    this.own(id);
    this.commit(this.user.filter((p) => p.id !== id));
  }

  private own(id: string): Preset {
    const p = this.user.find((x) => x.id === id);
    if (!p) throw new PresetError(this.get(id)?.builtin ? "builtin" : "missing");
    return p;
  }

  private commit(user: Preset[]): void {
    this.user = user;
    this.all = [...BUILTIN_PRESETS, ...user];
    try {
      this.storage?.setItem(PRESETS_KEY, JSON.stringify(user));
    } catch {
      // full or blocked: kept for this page only
    }
    for (const l of this.listeners) l();
  }
}

function checkName(name: string): string {
  const clean = name.trim().slice(0, MAX_NAME);
  if (!clean) throw new PresetError("empty");
  return clean;
}

function browserStorage(): KeyValue | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}

export const presets = new PresetStore(browserStorage());
