// Small building blocks shared by the pages: labelled fields that show the server's message
// for their own field, notices, and a loading / failure frame.
import type { ComponentChildren, JSX } from "preact";
import type { StateUpdater, Dispatch } from "preact/hooks";
import { useId } from "preact/hooks";
import { ApiError, errorText } from "./api";
import { onLinkClick } from "./router";

interface FieldProps {
  label: string;
  name: string;
  value: string;
  onInput: (value: string) => void;
  type?: string;
  autoComplete?: string;
  error?: ApiError | null;
  hint?: string;
  required?: boolean;
  inputMode?: "numeric" | "text";
  autoFocus?: boolean;
}

export function Field(p: FieldProps) {
  const id = useId();
  const message = p.error?.field(p.name);
  return (
    <div class="field">
      <label for={id}>{p.label}</label>
      <input
        id={id}
        name={p.name}
        type={p.type ?? "text"}
        value={p.value}
        autoComplete={p.autoComplete}
        required={p.required}
        inputMode={p.inputMode}
        autoFocus={p.autoFocus}
        aria-invalid={message ? "true" : undefined}
        aria-describedby={message ? `${id}-error` : p.hint ? `${id}-hint` : undefined}
        onInput={(e) => p.onInput((e.currentTarget as HTMLInputElement).value)}
      />
      {p.hint && !message && (
        <p class="hint" id={`${id}-hint`}>
          {p.hint}
        </p>
      )}
      {message && (
        <p class="field-error" id={`${id}-error`} role="alert">
          {message}
        </p>
      )}
    </div>
  );
}

// The request's own error when it was not about one field (or about a field the form has
// no input for).
export function FormError({ error, fields = [] }: { error: unknown; fields?: string[] }) {
  if (!error) return null;
  if (error instanceof ApiError) {
    const others = (error.problem.errors ?? []).filter((e) => !fields.includes(e.field));
    const shown = (error.problem.errors ?? []).some((e) => fields.includes(e.field));
    if (shown && others.length === 0) return null;
    return (
      <div class="notice error" role="alert">
        <p>{error.message}</p>
        {others.length > 0 && (
          <ul>
            {others.map((e) => (
              <li key={e.field}>
                {e.field}: {e.message}
              </li>
            ))}
          </ul>
        )}
      </div>
    );
  }
  return (
    <div class="notice error" role="alert">
      <p>{errorText(error)}</p>
    </div>
  );
}

export function Notice({ kind = "info", children }: { kind?: "info" | "error" | "ok"; children: ComponentChildren }) {
  return (
    <div class={`notice ${kind}`} role={kind === "error" ? "alert" : "status"}>
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Link(props: JSX.HTMLAttributes<HTMLAnchorElement> & { href: string }) {
  return <a {...props} onClick={onLinkClick} />;
}

export function Badge({ kind, children }: { kind: string; children: ComponentChildren }) {
  return <span class={`badge ${kind}`}>{children}</span>;
}

// The error a form shows when its two password fields differ, next to the second.
export function passwordsDiffer(): ApiError {
  return new ApiError({
    status: 400,
    code: "invalid_input",
    title: "The passwords differ",
    errors: [{ field: "repeat", code: "mismatch", message: "Type the same password twice" }],
  });
}

// Checkboxes over permission names (a role's, a token's): the chosen ones in `chosen`.
export function PermissionChoice(p: { legend: string; offered: string[]; chosen: string[]; onChange: Dispatch<StateUpdater<string[]>> }) {
  return (
    <fieldset>
      <legend>{p.legend}</legend>
      {p.offered.map((name) => (
        <label key={name} class="check">
          <input
            type="checkbox"
            checked={p.chosen.includes(name)}
            onChange={(e) => {
              const on = (e.currentTarget as HTMLInputElement).checked;
              p.onChange((c) => (on ? [...c, name] : c.filter((x) => x !== name)));
            }}
          />{" "}
          {name}
        </label>
      ))}
    </fieldset>
  );
}
