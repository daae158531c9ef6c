// One's own account: password, recovery codes, sessions (sign out everywhere else) and API
// tokens, each shown once when made.
import { useEffect, useState } from "preact/hooks";
import { ApiError, del, get, post, setCsrfToken, type Session } from "../api";
import { ago, when } from "../format";
import { Badge, Field, FormError, Loading, Notice, PermissionChoice } from "../ui";
import { EnrolTotp } from "./auth";

interface SessionRow {
  handle: string;
  created_at: string;
  last_seen_at: string;
  source: string;
  user_agent: string;
  current: boolean;
}

interface Token {
  id: string;
  name: string;
  permissions: string[];
  status: string;
  expires_at: string;
  last_used_at: string | null;
}

export function Account({ session }: { session: Session }) {
  return (
    <>
      <h1>Your account</h1>
      <p>
        {session.user.username} · {session.user.email} · {session.user.role} in {session.user.organisation} · second factor{" "}
        {session.user.second_factor ? "on" : "off"}
      </p>
      <Sessions />
      <ChangePassword />
      <SecondFactor on={session.user.second_factor} />
      <RecoveryCodes />
      <Tokens session={session} />
    </>
  );
}

function Sessions() {
  const [rows, setRows] = useState<SessionRow[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    get<{ sessions: SessionRow[] }>("/account/sessions")
      .then((r) => setRows(r.sessions))
      .catch(setError);
  }, [reload]);
  const run = async (action: () => Promise<unknown>) => {
    setError(null);
    try {
      await action();
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section>
      <h2>Sessions</h2>
      <FormError error={error} />
      {!rows ? (
        <Loading what="sessions" />
      ) : (
        <ul class="list">
          {rows.map((r) => (
            <li key={r.handle}>
              {r.user_agent || "unknown client"} from {r.source}, signed in {ago(r.created_at)}, last seen {ago(r.last_seen_at)}{" "}
              {r.current ? (
                <Badge kind="ok">this one</Badge>
              ) : (
                <button type="button" class="secondary" onClick={() => run(() => del(`/account/sessions/${encodeURIComponent(r.handle)}`))}>
                  Sign out
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      <button type="button" class="secondary" onClick={() => run(() => post("/account/sessions/end-others"))}>
        Sign out everywhere else
      </button>
    </section>
  );
}

function ChangePassword() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setDone(false);
    try {
      const s = await post<Session>("/account/password", { current_password: current, new_password: next });
      setCsrfToken(s.csrf_token);
      setCurrent("");
      setNext("");
      setDone(true);
    } catch (err) {
      setError(err);
    }
  };
  const apiError = error instanceof ApiError ? error : null;
  return (
    <form class="card narrow" onSubmit={submit} noValidate>
      <h2>Change the password</h2>
      <Field label="Current password" name="current_password" type="password" value={current} onInput={setCurrent} autoComplete="current-password" error={apiError} required />
      <Field label="New password" name="new_password" type="password" value={next} onInput={setNext} autoComplete="new-password" error={apiError} required />
      <FormError error={error} fields={["current_password", "new_password"]} />
      {done && <Notice kind="ok">Changed. Your other sessions were signed out.</Notice>}
      <button type="submit">Change the password</button>
    </form>
  );
}

function RecoveryCodes() {
  const [codes, setCodes] = useState<string[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const make = async () => {
    setError(null);
    try {
      setCodes((await post<{ recovery_codes: string[] }>("/account/recovery-codes")).recovery_codes);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section>
      <h2>Recovery codes</h2>
      <p>New codes replace the old ones, which stop working.</p>
      <FormError error={error} />
      {codes ? (
        <ol class="codes">
          {codes.map((c) => (
            <li key={c}>
              <code>{c}</code>
            </li>
          ))}
        </ol>
      ) : (
        <button type="button" class="secondary" onClick={make}>
          Make new recovery codes
        </button>
      )}
    </section>
  );
}

function Tokens({ session }: { session: Session }) {
  const [tokens, setTokens] = useState<Token[] | null>(null);
  const [name, setName] = useState("");
  const [days, setDays] = useState("30");
  const [chosen, setChosen] = useState<string[]>(["devices.read", "telemetry.read"]);
  const [made, setMade] = useState<string>("");
  const [error, setError] = useState<unknown>(null);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    get<{ tokens: Token[] }>("/account/tokens")
      .then((r) => setTokens(r.tokens))
      .catch(setError);
  }, [reload]);
  const grantable = (session.permissions ?? []).filter((p) => p !== "account.self");
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setMade("");
    const expires = new Date(Date.now() + Number(days) * 86400000).toISOString();
    try {
      const t = await post<{ token: string }>("/account/tokens", { name: name.trim(), permissions: chosen, expires_at: expires });
      setMade(t.token);
      setName("");
      setReload((n) => n + 1);
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (t: Token) => {
    try {
      await del(`/account/tokens/${encodeURIComponent(t.id)}`);
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    }
  };
  const apiError = error instanceof ApiError ? error : null;
  return (
    <section>
      <h2>API tokens</h2>
      <p>For scripts and integrations: sent as "Authorization: Bearer", limited to the permissions chosen, until they expire.</p>
      {made && (
        <Notice kind="ok">
          <p>
            The new token, shown only now: <code data-testid="api-token">{made}</code>
          </p>
        </Notice>
      )}
      {tokens && tokens.length > 0 && (
        <ul class="list">
          {tokens.map((t) => (
            <li key={t.id}>
              <strong>{t.name}</strong> <Badge kind={t.status === "active" ? "ok" : "muted"}>{t.status}</Badge> {t.permissions.join(", ")}
              <span class="muted"> · expires {when(t.expires_at)} · last used {ago(t.last_used_at)}</span>{" "}
              {t.status === "active" && (
                <button type="button" class="secondary" onClick={() => revoke(t)}>
                  Revoke
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      <form class="card narrow" onSubmit={submit} noValidate>
        <Field label="Token name" name="name" value={name} onInput={setName} error={apiError} required />
        <Field label="Valid for (days)" name="expires_at" value={days} onInput={setDays} inputMode="numeric" error={apiError} />
        <PermissionChoice legend="Permissions" offered={grantable} chosen={chosen} onChange={setChosen} />
        <FormError error={error} fields={["name", "expires_at"]} />
        <button type="submit">Make a token</button>
      </form>
    </section>
  );
}

// TOTP on (enrolment with a QR code and new recovery codes) or off (step-up; refused to
// administrators and where the organisation requires it, and an alert when done).
function SecondFactor({ on }: { on: boolean }) {
  const [enabled, setEnabled] = useState(on);
  const [enrolling, setEnrolling] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (enrolling) {
    return <EnrolTotp title="Turn on a second factor" onDone={() => { setEnrolling(false); setEnabled(true); }} />;
  }
  const turnOff = async () => {
    if (!confirm("Turn your second factor off? Signing in will need only your password.")) return;
    setError(null);
    try {
      await del("/account/totp");
      setEnabled(false);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section>
      <h2>Second factor</h2>
      <p>{enabled ? "On: signing in needs a code from your authenticator app." : "Off: signing in needs only your password."}</p>
      <FormError error={error} />
      {enabled ? (
        <button type="button" class="secondary" onClick={turnOff}>
          Turn it off
        </button>
      ) : (
        <button type="button" class="secondary" onClick={() => setEnrolling(true)}>
          Turn it on
        </button>
      )}
    </section>
  );
}
