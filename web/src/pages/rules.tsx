// The Decision Trigger's rules (docs/rules.md): the list with when each last fired, and an
// editor that checks a definition against the stored data (dry run) before saving it.
import { useEffect, useState } from "preact/hooks";
import { ApiError, del, get, may, post, call, type Session } from "../api";
import { ago, when } from "../format";
import { navigate } from "../router";
import { Badge, FormError, Link, Loading, Notice } from "../ui";

interface Rule {
  id: string;
  name: string;
  version: number;
  enabled: boolean;
  definition: unknown;
  updated_at: string;
  last_fired_at: string | null;
}

interface DryRun {
  from: string;
  to: string;
  devices_skipped: number;
  devices: { device: string; messages: number; events: { at: string; transition: string; summary: string }[] }[];
}

const kTemplate = {
  name: "hot room",
  selector: { profiles: ["environment"] },
  condition: "avg(temperature, 5m) > 30",
  for: "1m",
  clear_for: "2m",
  severity: "warning",
  actions: [{ type: "alert" }],
};

export function Rules({ session }: { session: Session }) {
  const [rules, setRules] = useState<Rule[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    get<{ rules: Rule[] }>("/rules")
      .then((r) => setRules(r.rules))
      .catch(setError);
  }, []);
  return (
    <>
      <div class="title-row">
        <h1>Rules</h1>
        {may(session, "rules.write") && (
          <Link class="button" href="/rules/new">
            New rule
          </Link>
        )}
      </div>
      <FormError error={error} />
      {!rules ? (
        !error && <Loading what="rules" />
      ) : rules.length === 0 ? (
        <p class="empty">No rules yet. A rule raises alerts, commands actuators and notifies channels when its condition holds.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Rule</th>
                <th scope="col">State</th>
                <th scope="col">Version</th>
                <th scope="col">Last fired</th>
              </tr>
            </thead>
            <tbody>
              {rules.map((r) => (
                <tr key={r.id}>
                  <td>
                    <Link href={`/rules/${encodeURIComponent(r.id)}`}>{r.name}</Link>
                  </td>
                  <td>
                    <Badge kind={r.enabled ? "ok" : "muted"}>{r.enabled ? "enabled" : "disabled"}</Badge>
                  </td>
                  <td>
                    {r.version} <span class="muted">({ago(r.updated_at)})</span>
                  </td>
                  <td title={when(r.last_fired_at)}>{ago(r.last_fired_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

// The server's problems with a definition, each at its field (e.g. definition.condition,
// with the position in the expression).
function Problems({ error }: { error: unknown }) {
  if (!(error instanceof ApiError) || !error.problem.errors?.length) return <FormError error={error} />;
  return (
    <div class="notice error" role="alert">
      <p>{error.message}</p>
      <ul data-testid="rule-problems">
        {error.problem.errors.map((e, i) => (
          <li key={i}>
            <code>{e.field}</code>: {e.message}
          </li>
        ))}
      </ul>
    </div>
  );
}

export function RuleEditor({ id, session }: { id: string | null; session: Session }) {
  const [rule, setRule] = useState<Rule | null>(null);
  const [text, setText] = useState(id ? "" : JSON.stringify(kTemplate, null, 2));
  const [enabled, setEnabled] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const [dry, setDry] = useState<DryRun | null>(null);
  const [saved, setSaved] = useState("");
  const [busy, setBusy] = useState(false);
  const writable = may(session, "rules.write");

  useEffect(() => {
    if (!id) return;
    get<Rule>(`/rules/${encodeURIComponent(id)}`)
      .then((r) => {
        setRule(r);
        setEnabled(r.enabled);
        setText(JSON.stringify(r.definition, null, 2));
      })
      .catch(setError);
  }, [id]);

  const definition = (): unknown => {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ApiError({ status: 400, code: "invalid_json", title: `The definition is not JSON: ${(e as Error).message}` });
    }
  };
  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    setSaved("");
    try {
      await action();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const dryRun = () =>
    run(async () => {
      setDry(await post<DryRun>("/rules/dry-run", { definition: definition(), hours: 24 }));
    });
  const save = () =>
    run(async () => {
      if (!id) {
        const made = await post<Rule>("/rules", { definition: definition(), enabled });
        navigate(`/rules/${encodeURIComponent(made.id)}`, true);
        return;
      }
      const next = await call<Rule>("PUT", `/rules/${encodeURIComponent(id)}`, { definition: definition(), enabled, version: rule?.version ?? 1 });
      setRule(next);
      setSaved(`Saved as version ${next.version}.`);
    });
  const remove = () => {
    if (!id || !confirm("Delete this rule? Its alerts stay; it stops firing.")) return;
    void run(async () => {
      await del(`/rules/${encodeURIComponent(id)}`);
      navigate("/rules");
    });
  };

  if (id && !rule && !error) return <Loading what="the rule" />;
  return (
    <>
      <p class="crumbs">
        <Link href="/rules">Rules</Link> /
      </p>
      <h1>{rule ? rule.name : "New rule"}</h1>
      {rule && (
        <p class="muted">
          Version {rule.version}, last fired {ago(rule.last_fired_at)}. The condition language, windows, absence and actions:
          docs/rules.md.
        </p>
      )}
      <div class="field">
        <label for="definition">Definition (JSON)</label>
        <textarea id="definition" class="code" rows={16} spellcheck={false} value={text} readOnly={!writable} onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)} />
      </div>
      {writable && (
        <label class="check">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled((e.currentTarget as HTMLInputElement).checked)} /> enabled
        </label>
      )}
      <Problems error={error} />
      {saved && <Notice kind="ok">{saved}</Notice>}
      <div class="actions">
        <button type="button" class="secondary" disabled={busy} onClick={dryRun}>
          Dry run over the last 24 hours
        </button>
        {writable && (
          <button type="button" disabled={busy} onClick={save}>
            {id ? "Save a new version" : "Create the rule"}
          </button>
        )}
        {writable && id && (
          <button type="button" class="secondary danger" disabled={busy} onClick={remove}>
            Delete
          </button>
        )}
      </div>
      {dry && (
        <section data-testid="dry-run">
          <h2>Dry run</h2>
          <p class="muted">
            From {when(dry.from)} to {when(dry.to)}
            {dry.devices_skipped ? `; ${dry.devices_skipped} devices skipped` : ""}.
          </p>
          {dry.devices.every((d) => d.events.length === 0) ? (
            <p class="empty">It would not have fired.</p>
          ) : (
            <ul class="list">
              {dry.devices
                .filter((d) => d.events.length > 0)
                .map((d) => (
                  <li key={d.device}>
                    <strong>{d.device}</strong>:{" "}
                    {d.events.map((e) => `${e.transition} ${when(e.at)}`).join(", ")}
                  </li>
                ))}
            </ul>
          )}
        </section>
      )}
    </>
  );
}
