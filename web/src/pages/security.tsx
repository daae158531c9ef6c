// The security log (auditors and system administrators): filtered and searched, and whether
// its hash chain and signed checkpoints verify (JPCERT III-1, VII-2).
import { useEffect, useState } from "preact/hooks";
import { get } from "../api";
import { when } from "../format";
import { Badge, FormError, Loading, Notice } from "../ui";

interface LogEvent {
  seq: number;
  ts: string;
  actor: string;
  action: string;
  object: string;
  outcome: string;
  source: string;
}

interface Verification {
  ok: boolean;
  first_problem: { file: string; line: number; what: string } | null;
  last_checkpoint_ts: string | null;
  lines_after_last_checkpoint: number;
}

// "user:<id>" shown as the person's name where the reader may see people (their own
// organisation's); the id stays in the tooltip.
function usePeopleNames(): Map<string, string> {
  const [names, setNames] = useState(new Map<string, string>());
  useEffect(() => {
    get<{ people: { id: string; username: string }[] }>("/users")
      .then((r) => setNames(new Map(r.people.map((p) => [`user:${p.id}`, p.username]))))
      .catch(() => setNames(new Map()));
  }, []);
  return names;
}

function Who({ id, names }: { id: string; names: Map<string, string> }) {
  const name = names.get(id);
  return name ? <span title={id}>{name}</span> : <>{id}</>;
}

export function SecurityLog() {
  const names = usePeopleNames();
  const [events, setEvents] = useState<LogEvent[] | null>(null);
  const [verification, setVerification] = useState<Verification | null>(null);
  const [q, setQ] = useState("");
  const [outcome, setOutcome] = useState("");
  const [alertsOnly, setAlertsOnly] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const timer = window.setTimeout(() => {
      const params = new URLSearchParams({ limit: "200" });
      if (q.trim()) params.set("q", q.trim());
      if (outcome) params.set("outcome", outcome);
      if (alertsOnly) params.set("alert", "true");
      setError(null);
      get<{ events: LogEvent[] }>(`/security-log?${params}`)
        .then((r) => setEvents(r.events))
        .catch(setError);
    }, 250);
    return () => window.clearTimeout(timer);
  }, [q, outcome, alertsOnly]);

  useEffect(() => {
    get<Verification>("/security-log/verify")
      .then(setVerification)
      .catch(() => setVerification(null));
  }, []);

  return (
    <>
      <h1>Security log</h1>
      {verification &&
        (verification.ok ? (
          <Notice kind="ok">
            <p data-testid="log-verification">
              The log verifies: its hash chain is whole and signed
              {verification.last_checkpoint_ts ? ` (last checkpoint ${when(verification.last_checkpoint_ts)}, ${verification.lines_after_last_checkpoint} events since)` : ""}.
            </p>
          </Notice>
        ) : (
          <Notice kind="error">
            <p data-testid="log-verification">
              The log does not verify
              {verification.first_problem ? `: ${verification.first_problem.file} line ${verification.first_problem.line}: ${verification.first_problem.what}` : ""}.
            </p>
          </Notice>
        ))}
      <div class="toolbar">
        <label>
          Search <input type="search" value={q} onInput={(e) => setQ((e.currentTarget as HTMLInputElement).value)} placeholder="action, object, actor" />
        </label>
        <label>
          Outcome{" "}
          <select value={outcome} onChange={(e) => setOutcome((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">any</option>
            <option value="success">success</option>
            <option value="failure">failure</option>
            <option value="denied">denied</option>
          </select>
        </label>
        <label>
          <input type="checkbox" checked={alertsOnly} onChange={(e) => setAlertsOnly((e.currentTarget as HTMLInputElement).checked)} /> alerts only
        </label>
      </div>
      <FormError error={error} />
      {!events ? (
        <Loading what="the security log" />
      ) : events.length === 0 ? (
        <p class="empty">No event matches.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Action</th>
                <th scope="col">Outcome</th>
                <th scope="col">Actor</th>
                <th scope="col">Object</th>
                <th scope="col">Source</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr key={e.seq}>
                  <td>{when(e.ts)}</td>
                  <td>{e.action}</td>
                  <td>
                    <Badge kind={e.outcome === "success" ? "ok" : "warn"}>{e.outcome}</Badge>
                  </td>
                  <td>
                    <Who id={e.actor} names={names} />
                  </td>
                  <td>
                    <Who id={e.object} names={names} />
                  </td>
                  <td>{e.source}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
