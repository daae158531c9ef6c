// The security settings (system administrators): every key the console may change, with
// where its value comes from and when a change applies; and About (the version).
import { useEffect, useState } from "preact/hooks";
import { ApiError, get, patch } from "../api";
import { when } from "../format";
import { FormError, Loading, Notice } from "../ui";

interface KeyInfo {
  source: "file" | "console";
  changed_by?: string;
  changed_at?: string;
  applies: "now" | "next start";
  pending_restart?: boolean;
}

interface Settings {
  version: string;
  settings: Record<string, Record<string, unknown>>;
  keys: Record<string, KeyInfo>;
  changed?: { key: string; applies: string }[];
}

function valueOf(s: Settings, key: string): unknown {
  const [section, name] = key.split(".", 2);
  return s.settings[section]?.[name];
}

function shown(v: unknown): string {
  return Array.isArray(v) ? v.join("\n") : String(v ?? "");
}

export function SettingsPage() {
  const [settings, setSettings] = useState<Settings | null>(null);
  const [edits, setEdits] = useState<Record<string, string | boolean>>({});
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState("");

  useEffect(() => {
    get<Settings>("/settings").then(setSettings).catch(setError);
  }, []);
  if (!settings) return error ? <FormError error={error} /> : <Loading what="the settings" />;

  const keys = Object.keys(settings.keys).sort();
  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setDone("");
    const changes: Record<string, unknown> = {};
    for (const [key, edited] of Object.entries(edits)) {
      const before = valueOf(settings, key);
      if (typeof before === "boolean") changes[key] = edited;
      else if (Array.isArray(before)) changes[key] = String(edited).split("\n").map((x) => x.trim()).filter(Boolean);
      else if (typeof before === "number") changes[key] = String(edited).trim() === "" ? null : Number(edited);
      else changes[key] = edited;
    }
    if (Object.keys(changes).length === 0) return;
    try {
      const next = await patch<Settings>("/settings", { changes });
      setSettings(next);
      setEdits({});
      setDone((next.changed ?? []).map((c) => `${c.key}: applies ${c.applies}`).join("; ") || "Saved.");
    } catch (err) {
      setError(err);
    }
  };
  const problem = (key: string) =>
    error instanceof ApiError ? error.problem.errors?.filter((p) => p.field === key || p.field.startsWith(`${key}[`)).map((p) => p.message).join("; ") : undefined;

  return (
    <>
      <h1>Settings</h1>
      <p>
        The configuration file's values, then the changes made here. Each change is recorded in the security log, and one
        that weakens a protection is an alert.
      </p>
      <PasswordPolicy policy={settings.settings.password_policy ?? {}} />
      <form onSubmit={save} noValidate>
        <h2>Changeable settings</h2>
        <div class="table-wrap">
          <table class="settings">
            <thead>
              <tr>
                <th scope="col">Setting</th>
                <th scope="col">Value</th>
                <th scope="col">From</th>
              </tr>
            </thead>
            <tbody>
              {keys.map((key) => {
                const info = settings.keys[key];
                const v = valueOf(settings, key);
                const id = `setting-${key.replace(/\W/g, "-")}`;
                const message = problem(key);
                const edited = edits[key];
                return (
                  <tr key={key}>
                    <td>
                      <label for={id}>
                        <code>{key}</code>
                      </label>
                    </td>
                    <td>
                      {typeof v === "boolean" ? (
                        <input id={id} type="checkbox" checked={edited === undefined ? v : Boolean(edited)} onChange={(e) => setEdits({ ...edits, [key]: (e.currentTarget as HTMLInputElement).checked })} />
                      ) : Array.isArray(v) ? (
                        <textarea id={id} rows={Math.max(2, v.length + 1)} value={edited === undefined ? shown(v) : String(edited)} aria-invalid={message ? "true" : undefined} onInput={(e) => setEdits({ ...edits, [key]: (e.currentTarget as HTMLTextAreaElement).value })} />
                      ) : (
                        <input id={id} inputMode={typeof v === "number" ? "numeric" : "text"} value={edited === undefined ? shown(v) : String(edited)} aria-invalid={message ? "true" : undefined} onInput={(e) => setEdits({ ...edits, [key]: (e.currentTarget as HTMLInputElement).value })} />
                      )}
                      {message && (
                        <p class="field-error" role="alert">
                          {message}
                        </p>
                      )}
                    </td>
                    <td class="muted">
                      {info.source === "console" ? `changed by ${info.changed_by ?? "?"} ${when(info.changed_at)}` : "file"}
                      {info.applies === "next start" && " · applies at the next start"}
                      {info.pending_restart && " · waiting for a restart"}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
        <FormError error={error} fields={keys} />
        {done && <Notice kind="ok">{done}</Notice>}
        <button type="submit" disabled={Object.keys(edits).length === 0}>
          Save the changes
        </button>
      </form>
    </>
  );
}

// Fixed by torii (JPCERT I-3): shown, not changed.
function PasswordPolicy({ policy }: { policy: Record<string, unknown> }) {
  return (
    <section>
      <h2>Password policy</h2>
      <ul class="list" data-testid="password-policy">
        <li>
          {String(policy.min_length ?? 12)} to {String(policy.max_length ?? 128)} characters, strength (zxcvbn) at least{" "}
          {String(policy.min_zxcvbn_score ?? 3)} of 4
        </li>
        <li>refused when common or breached{policy.common_list ? " (the list shipped with torii)" : ""}, or when it contains the user's name or e-mail</li>
        <li>none of the last {String(policy.history ?? 5)} passwords again</li>
        <li>{policy.second_factor_for_administrators ? "administrators must use a second factor" : "a second factor is optional"}</li>
      </ul>
    </section>
  );
}

export function About() {
  const [version, setVersion] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    get<Settings>("/settings")
      .then((s) => setVersion(s.version))
      .catch(setError);
  }, []);
  return (
    <>
      <h1>About</h1>
      <FormError error={error} />
      {version && (
        <p>
          torii <span data-testid="version">{version}</span>: a secure-by-default IoT platform.
        </p>
      )}
    </>
  );
}
