/** Sign-in form, shown when the server keeps accounts and GET /api/me says 401. */

import { useState } from "react";
import { login } from "../api";
import { useT } from "../i18n";

export function Login() {
  const t = useT();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main className="login">
      <form
        aria-label={t("signIn")}
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          void login(username, password).then((err) => {
            setBusy(false);
            if (err === null) window.location.reload();
            else setError(err);
          });
        }}
      >
        <h1>{t("appName")}</h1>
        <label>
          {t("username")}
          <input autoComplete="username" value={username} onChange={(e) => { setUsername(e.target.value); }} required />
        </label>
        <label>
          {t("password")}
          <input
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => {
              setPassword(e.target.value);
            }}
            required
          />
        </label>
        {error ? <p role="alert" className="msg-error">{error}</p> : null}
        <button type="submit" className="btn primary" disabled={busy}>
          {t("signIn")}
        </button>
      </form>
    </main>
  );
}
