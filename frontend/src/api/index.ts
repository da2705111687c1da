/**
 * The UI's one entry to data: pick the backend once at start.
 *
 * GET /api/me → 200: the server keeps conversations (ServerBackend); 401: the server keeps them
 * but wants a login first; anything else (404 today, or the UI opened without the service):
 * conversations stay in this browser (LocalBackend) and answers stream from /v1 directly.
 * `localStorage["chatgate.backend"] = "local"` forces the local mode.
 */

import { LocalBackend } from "./local";
import { errorMessage } from "./openai";
import { ServerBackend } from "./server";
import type { ChatBackend } from "./types";

export type { ChatBackend } from "./types";

export type Capability = "server" | "login" | "local";

export const BACKEND_OVERRIDE_KEY = "chatgate.backend";

export async function detectCapability(
  fetchImpl: typeof fetch = fetch,
  override: string | null = readOverride(),
): Promise<Capability> {
  if (override === "local") return "local";
  try {
    const res = await fetchImpl("/api/me", {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const json = (res.headers.get("content-type") ?? "").includes("application/json");
    if (res.status === 200 && json) return "server";
    if (res.status === 401 && json) return "login";
  } catch {
    // offline or no server: the local mode still works against whatever /v1 answers later
  }
  return "local";
}

function readOverride(): string | null {
  try {
    return localStorage.getItem(BACKEND_OVERRIDE_KEY);
  } catch {
    return null;
  }
}

export async function openBackend(capability: Capability): Promise<ChatBackend> {
  return capability === "local" ? LocalBackend.open() : new ServerBackend();
}

export async function login(username: string, password: string): Promise<string | null> {
  const res = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({ name: username, password }),
  });
  if (res.ok) return null;
  return errorMessage(res);
}

export async function logout(): Promise<void> {
  // X-Requested-With: the server's CSRF guard wants it on a state change without a JSON body.
  await fetch("/api/auth/logout", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-Requested-With": "chatgate" },
  });
}
