// First-run setup, signing in (password, then TOTP or a recovery code) and TOTP enrolment.
import { useEffect, useState } from "preact/hooks";
import { ApiError, get, post, setCsrfToken, type Session } from "../api";
import { navigate, takeFragmentToken } from "../router";
import { Field, FormError, Loading, Notice, passwordsDiffer } from "../ui";

type Done = (session: Session) => void;

function accepted(session: Session, done: Done): void {
  setCsrfToken(session.csrf_token);
  done(session);
}

// The one-time link is /setup#<token>: the token stays in the fragment, which the browser
// never sends, and leaves the address bar as soon as the page has read it.
let setupToken = "";

export function Setup({ onSession }: { onSession: Done }) {
  if (!setupToken) setupToken = takeFragmentToken("/setup");
  const [pending, setPending] = useState<boolean | null>(null);
  const [username, setUsername] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [repeat, setRepeat] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [session, setSession] = useState<Session | null>(null);

  useEffect(() => {
    get<{ pending: boolean }>("/setup")
      .then((s) => setPending(s.pending))
      .catch(setError);
  }, []);

  if (session) return <EnrolTotp title="Protect the administrator with a second factor" onDone={onSession} />;
  if (pending === null) return error ? <FormError error={error} /> : <Loading what="the setup state" />;
  if (!pending) {
    return (
      <section class="card narrow">
        <h1>torii is set up</h1>
        <p>An administrator exists already; the setup link works only once.</p>
        <button type="button" onClick={() => navigate("/sign-in")}>
          Sign in
        </button>
      </section>
    );
  }
  if (!setupToken) {
    return (
      <section class="card narrow">
        <h1>Set up torii</h1>
        <Notice kind="error">
          Open the one-time link that <code>torii server</code> printed when it started: it carries the setup token.
        </Notice>
      </section>
    );
  }

  const submit = async (e: Event) => {
    e.preventDefault();
    if (password !== repeat) {
      setError(passwordsDiffer());
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const s = await post<Session>("/setup", { token: setupToken, username, email, password });
      setCsrfToken(s.csrf_token);
      setupToken = "";
      setSession(s);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const apiError = error instanceof ApiError ? error : null;
  return (
    <section class="card narrow">
      <h1>Set up torii</h1>
      <p>Create the first system administrator. There are no default accounts: this one is yours.</p>
      <form onSubmit={submit} noValidate>
        <Field label="User name" name="username" value={username} onInput={setUsername} autoComplete="username" error={apiError} required autoFocus />
        <Field label="E-mail" name="email" type="email" value={email} onInput={setEmail} autoComplete="email" error={apiError} required />
        <Field
          label="Password"
          name="password"
          type="password"
          value={password}
          onInput={setPassword}
          autoComplete="new-password"
          error={apiError}
          hint="At least 12 characters; a few unrelated words work well. Common, breached or guessable passwords are refused."
          required
        />
        <Field label="Password again" name="repeat" type="password" value={repeat} onInput={setRepeat} autoComplete="new-password" error={apiError} required />
        <FormError error={error} fields={["username", "email", "password", "repeat"]} />
        <button type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create the administrator"}
        </button>
      </form>
    </section>
  );
}

interface Enrolment {
  secret: string;
  uri: string;
  qr_svg: string;
}

// TOTP enrolment (RFC 6238): scan the QR code or type the secret, confirm with a code, then
// keep the ten recovery codes, shown this once.
export function EnrolTotp({ title, onDone }: { title: string; onDone: Done }) {
  const [enrolment, setEnrolment] = useState<Enrolment | null>(null);
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [confirmed, setConfirmed] = useState<Session | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    post<Enrolment>("/account/totp").then(setEnrolment).catch(setError);
  }, []);

  if (confirmed) {
    return (
      <section class="card narrow">
        <h1>Recovery codes</h1>
        <p>
          Each code signs you in once if you lose your authenticator. Store them somewhere safe now: they are not shown
          again.
        </p>
        <ol class="codes" aria-label="Recovery codes">
          {(confirmed.recovery_codes ?? []).map((c) => (
            <li key={c}>
              <code>{c}</code>
            </li>
          ))}
        </ol>
        <button type="button" onClick={() => accepted(confirmed, onDone)}>
          I have stored them, continue
        </button>
      </section>
    );
  }
  if (!enrolment) return error ? <FormError error={error} /> : <Loading what="a new secret" />;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await post<Session>("/account/totp/confirm", { code: code.trim() });
      setCsrfToken(s.csrf_token);
      setConfirmed(s);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card narrow">
      <h1>{title}</h1>
      <p>Scan this code with an authenticator app (or type the secret), then enter the six digits it shows.</p>
      <img class="qr" src={`data:image/svg+xml;base64,${btoa(enrolment.qr_svg)}`} alt="QR code of the secret to add to an authenticator app" width="200" height="200" />
      <p>
        Secret: <code data-testid="totp-secret">{enrolment.secret}</code>
      </p>
      <form onSubmit={submit} noValidate>
        <Field label="Code from the app" name="code" value={code} onInput={setCode} inputMode="numeric" autoComplete="one-time-code" error={error instanceof ApiError ? error : null} required autoFocus />
        <FormError error={error} fields={["code"]} />
        <button type="submit" disabled={busy}>
          {busy ? "Checking…" : "Confirm"}
        </button>
      </form>
    </section>
  );
}

function signInMessage(e: unknown): unknown {
  if (!(e instanceof ApiError)) return e;
  if (e.code === "account_locked" || e.code === "too_many_attempts") {
    const seconds = e.problem.retry_after_seconds;
    const wait = seconds ? ` Try again in ${seconds} seconds.` : "";
    return new Error(`${e.message}.${wait}`.replace("..", "."));
  }
  return e;
}

export function SignIn({ stage, onSession }: { stage: "password" | "second-factor"; onSession: Done }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [step, setStep] = useState<"password" | "second-factor" | "forgot">(stage);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const run = async (e: Event, action: () => Promise<Session>) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await action();
      setCsrfToken(s.csrf_token);
      setPassword("");
      setCode("");
      if (s.stage === "second-factor") setStep("second-factor");
      else onSession(s);
    } catch (err) {
      setError(signInMessage(err));
    } finally {
      setBusy(false);
    }
  };

  if (step === "second-factor") {
    return (
      <section class="card narrow">
        <h1>Second factor</h1>
        <p>Enter the code from your authenticator app, or one of your recovery codes.</p>
        <form onSubmit={(e) => run(e, () => post<Session>("/session/second-factor", { code: code.trim() }))} noValidate>
          <Field label="Code" name="code" value={code} onInput={setCode} autoComplete="one-time-code" error={error instanceof ApiError ? error : null} required autoFocus />
          <FormError error={error} fields={["code"]} />
          <button type="submit" disabled={busy}>
            {busy ? "Checking…" : "Sign in"}
          </button>
        </form>
      </section>
    );
  }
  if (step === "forgot") return <ForgotPassword onBack={() => setStep("password")} />;
  return (
    <section class="card narrow">
      <h1>Sign in to torii</h1>
      <form onSubmit={(e) => run(e, () => post<Session>("/session", { username, password }))} noValidate>
        <Field label="User name" name="username" value={username} onInput={setUsername} autoComplete="username" error={error instanceof ApiError ? error : null} required autoFocus />
        <Field label="Password" name="password" type="password" value={password} onInput={setPassword} autoComplete="current-password" error={error instanceof ApiError ? error : null} required />
        <FormError error={error} fields={["username", "password"]} />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <p>
        <button type="button" class="link" onClick={() => setStep("forgot")}>
          Forgot your password?
        </button>
      </p>
    </section>
  );
}

// A password link by e-mail (POST /api/v1/password-reset). The answer is the same whoever
// is named, so it says nothing about which accounts exist.
function ForgotPassword({ onBack }: { onBack: () => void }) {
  const [name, setName] = useState("");
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await post("/password-reset", { name: name.trim() });
      setSent(true);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section class="card narrow">
      <h1>Forgot your password?</h1>
      {sent ? (
        <Notice kind="ok">
          If that names an account with an e-mail address, a link to set a new password is on its way; it works once, for 15
          minutes.
        </Notice>
      ) : (
        <form onSubmit={submit} noValidate>
          <Field label="User name or e-mail" name="name" value={name} onInput={setName} autoComplete="username" error={error instanceof ApiError ? error : null} required autoFocus />
          <FormError error={error} fields={["name"]} />
          <button type="submit">Send a link</button>
        </form>
      )}
      <p>
        <button type="button" class="link" onClick={onBack}>
          Back to sign-in
        </button>
      </p>
    </section>
  );
}
