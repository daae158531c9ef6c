// The step-up dialog: before a sensitive operation the server wants a password or TOTP code
// given within the last 5 minutes (POST /api/v1/session/step-up). The dialog is modal, its
// first field takes the focus, and Escape cancels (the operation then fails as refused).
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, onStepUpRequired, post } from "./api";
import { Field, FormError } from "./ui";

export function StepUpDialog() {
  const dialog = useRef<HTMLDialogElement>(null);
  const pending = useRef<((ok: boolean) => void) | null>(null);
  const [open, setOpen] = useState(false);
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    onStepUpRequired(
      () =>
        new Promise<boolean>((resolve) => {
          pending.current = resolve;
          setPassword("");
          setCode("");
          setError(null);
          setOpen(true);
        })
    );
    return () => onStepUpRequired(null);
  }, []);

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);

  const finish = (ok: boolean) => {
    setOpen(false);
    pending.current?.(ok);
    pending.current = null;
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post("/session/step-up", code.trim() ? { code: code.trim() } : { password });
      finish(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const apiError = error instanceof ApiError ? error : null;
  return (
    <dialog ref={dialog} class="card" aria-labelledby="step-up-title" onCancel={() => finish(false)}>
      {open && (
        <form onSubmit={submit} noValidate>
          <h2 id="step-up-title">Confirm it is you</h2>
          <p>This operation needs your password or a code from your authenticator app.</p>
          <Field label="Password" name="password" type="password" value={password} onInput={setPassword} autoComplete="current-password" error={apiError} autoFocus />
          <Field label="Or a code from the app" name="code" value={code} onInput={setCode} inputMode="numeric" autoComplete="one-time-code" error={apiError} />
          <FormError error={error} fields={["password", "code"]} />
          <div class="actions">
            <button type="submit" disabled={busy}>
              {busy ? "Checking…" : "Confirm"}
            </button>
            <button type="button" class="secondary" onClick={() => finish(false)}>
              Cancel
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
