// The alert inbox: open → acknowledged → resolved, with who and when (docs/alerts.md).
import { useEffect, useState } from "preact/hooks";
import { get, post, type Alert } from "../api";
import { ago, when } from "../format";
import { Badge, FormError, Link, Loading } from "../ui";

const kFilters: Record<string, string> = {
  active: "open,acknowledged",
  open: "open",
  acknowledged: "acknowledged",
  resolved: "resolved",
};

export function Alerts() {
  const [filter, setFilter] = useState("active");
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    setError(null);
    get<{ alerts: Alert[] }>(`/alerts?status=${kFilters[filter]}&limit=100`)
      .then((r) => setAlerts(r.alerts))
      .catch(setError);
  }, [filter, reload]);

  const act = async (a: Alert, action: "acknowledge" | "resolve") => {
    try {
      await post(`/alerts/${encodeURIComponent(a.id)}/${action}`);
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <>
      <h1>Alerts</h1>
      <div class="toolbar">
        <label>
          Show{" "}
          <select value={filter} onChange={(e) => setFilter((e.currentTarget as HTMLSelectElement).value)}>
            <option value="active">open and acknowledged</option>
            <option value="open">open</option>
            <option value="acknowledged">acknowledged</option>
            <option value="resolved">resolved</option>
          </select>
        </label>
      </div>
      <FormError error={error} />
      {!alerts ? (
        <Loading what="alerts" />
      ) : alerts.length === 0 ? (
        <p class="empty">No alerts here.</p>
      ) : (
        <ul class="alerts">
          {alerts.map((a) => (
            <li key={a.id} class={`alert ${a.status}`}>
              <div class="alert-head">
                <Badge kind={a.severity}>{a.severity}</Badge> <strong>{a.title}</strong>{" "}
                <Badge kind="muted">{a.status}</Badge>
              </div>
              <p>{a.summary}</p>
              <p class="muted">
                {a.source}
                {a.device && (
                  <>
                    {" · "}
                    <Link href={`/devices/${encodeURIComponent(a.device)}`}>{a.device}</Link>
                  </>
                )}
                {a.rule && <> · rule {a.rule}</>} · opened <span title={when(a.opened_at)}>{ago(a.opened_at)}</span>
                {a.occurrences > 1 && <> · {a.occurrences} times, last {ago(a.last_raised_at)}</>}
                {a.acknowledged_by && <> · acknowledged by {a.acknowledged_by}</>}
                {a.resolved_by && <> · resolved by {a.resolved_by}</>}
              </p>
              {a.status !== "resolved" && (
                <div class="actions">
                  {a.status === "open" && (
                    <button type="button" class="secondary" onClick={() => act(a, "acknowledge")}>
                      Acknowledge
                    </button>
                  )}
                  <button type="button" class="secondary" onClick={() => act(a, "resolve")}>
                    Resolve
                  </button>
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
