/** Hooks of the admin page and its sidebar link: who is signed in, and loading admin data. */

import { createContext, useContext, useEffect, useState } from "react";
import { AdminApi, AdminError, type Me } from "../api/admin";

// One /api/me per page load: the sidebar and the admin page share it (sign-in and sign-out
// reload the page, so it cannot go stale).
let mePromise: Promise<Me | null> | null = null;

function loadMe(): Promise<Me | null> {
  mePromise ??= new AdminApi().me().catch(() => null);
  return mePromise;
}

/** The signed-in user; `undefined` while asking, `null` when the server keeps no accounts. */
export function useMe(): Me | null | undefined {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  useEffect(() => {
    let live = true;
    void loadMe().then((m) => {
      if (live) setMe(m);
    });
    return () => {
      live = false;
    };
  }, []);
  return me;
}

export interface AdminContextValue {
  api: AdminApi;
  /** A call answered 401: the server wants the admin key. */
  unauthorized: () => void;
}

export const AdminContext = createContext<AdminContextValue>({ api: new AdminApi(), unauthorized: () => undefined });

export function useAdmin(): AdminContextValue {
  return useContext(AdminContext);
}

export interface Resource<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/** Load with `load` (keep it stable: useCallback) now and on reload(); errors as text. */
export function useResource<T>(load: (api: AdminApi) => Promise<T>): Resource<T> {
  const { api, unauthorized } = useAdmin();
  const [state, setState] = useState<{ data: T | null; error: string | null; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [version, setVersion] = useState(0);
  useEffect(() => {
    let live = true;
    load(api).then(
      (data) => {
        if (live) setState({ data, error: null, loading: false });
      },
      (e: unknown) => {
        if (!live) return;
        if (e instanceof AdminError && e.status === 401) unauthorized();
        setState((s) => ({ data: s.data, error: e instanceof Error ? e.message : String(e), loading: false }));
      },
    );
    return () => {
      live = false;
    };
  }, [api, load, unauthorized, version]);
  return {
    ...state,
    reload: () => {
      setState((s) => ({ ...s, loading: true }));
      setVersion((v) => v + 1);
    },
  };
}
