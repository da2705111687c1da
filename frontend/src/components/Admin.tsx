/** The admin page (#/admin): client keys, users' limits, usage, cache and upstreams, for admins only. */

import { useCallback, useId, useMemo, useState } from "react";
import { ADMIN_KEY_STORAGE, AdminApi } from "../api/admin";
import { useT } from "../i18n";
import { KeysSection } from "./AdminKeys";
import { CacheSection, UpstreamsSection, UsageSection } from "./AdminStats";
import { UsersSection } from "./AdminUsers";
import { AdminContext, useMe } from "./adminHooks";
import { Icon } from "./Icon";

function readAdminKey(): string | null {
  try {
    return sessionStorage.getItem(ADMIN_KEY_STORAGE);
  } catch {
    return null;
  }
}

function rememberAdminKey(key: string): void {
  try {
    sessionStorage.setItem(ADMIN_KEY_STORAGE, key);
  } catch {
    // not remembered: asked again after a reload
  }
}

/** Asked for when the server protects /admin/ with an admin key (a call answered 401). */
function AdminKeyForm({ onKey, hadKey }: { onKey: (key: string) => void; hadKey: boolean }) {
  const t = useT();
  const id = useId();
  const [value, setValue] = useState("");
  return (
    <form
      className="admin-form admin-key-form"
      aria-label={t("adminKey")}
      onSubmit={(e) => {
        e.preventDefault();
        if (value.trim()) onKey(value.trim());
      }}
    >
      <p>{t("adminKeyNeeded")}</p>
      {hadKey ? (
        <p role="alert" className="msg-error">
          {t("adminKeyRejected")}
        </p>
      ) : null}
      <div className="field">
        <label htmlFor={id}>{t("adminKey")}</label>
        <input
          id={id}
          type="password"
          autoComplete="off"
          required
          value={value}
          onChange={(e) => {
            setValue(e.target.value);
          }}
        />
      </div>
      <button type="submit" className="btn primary">
        {t("adminContinue")}
      </button>
    </form>
  );
}

export function AdminPage() {
  const t = useT();
  const me = useMe();
  const [adminKey, setAdminKey] = useState<string | null>(readAdminKey);
  const [needKey, setNeedKey] = useState(false);
  const unauthorized = useCallback(() => {
    setNeedKey(true);
  }, []);
  const context = useMemo(() => ({ api: new AdminApi(adminKey), unauthorized }), [adminKey, unauthorized]);
  let body;
  if (me === undefined) {
    body = (
      <p className="empty-note" aria-busy="true">
        {t("loading")}
      </p>
    );
  } else if (!me?.isAdmin) {
    body = (
      <p role="alert" className="admin-denied">
        {t("adminOnly")}
      </p>
    );
  } else if (needKey) {
    body = (
      <AdminKeyForm
        hadKey={adminKey !== null}
        onKey={(key) => {
          rememberAdminKey(key);
          setAdminKey(key);
          setNeedKey(false);
        }}
      />
    );
  } else {
    body = (
      <AdminContext value={context}>
        <KeysSection />
        <UsersSection />
        <UsageSection />
        <CacheSection />
        <UpstreamsSection />
      </AdminContext>
    );
  }
  return (
    <div className="admin" data-ready={me === undefined ? "false" : "true"}>
      <header className="admin-head">
        <a className="btn admin-back" href="#/">
          <Icon name="left" size={14} /> {t("adminBackToChat")}
        </a>
        <h1>{t("adminTitle")}</h1>
        {me && !me.singleUser ? <span className="admin-user">{t("adminSignedInAs", { name: me.name })}</span> : null}
      </header>
      <main className="admin-main">{body}</main>
    </div>
  );
}
