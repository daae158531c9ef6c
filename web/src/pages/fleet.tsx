// The fleet at a glance, the device list and the live view of one device (JPCERT VII-1).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, del, get, may, post, put, type Alert, type Bucket, type Device, type DeviceDetail, type Session } from "../api";
import { ago, value, when } from "../format";
import { Chart, type Series } from "../chart";
import { navigate } from "../router";
import { Badge, Field, FormError, Link, Loading, Notice } from "../ui";

// The organisation's live messages (docs/console.md, "Live telemetry"): one WebSocket over
// the console's own origin, carrying the session cookie; closed with the view.
// A null path opens nothing (yet).
export function useLive(path: string | null, onMessage: (m: LiveMessage) => void): void {
  const handler = useRef(onMessage);
  handler.current = onMessage;
  useEffect(() => {
    if (path === null) return;
    let socket: WebSocket | null = null;
    let retry: number | undefined;
    let closed = false;
    const open = () => {
      socket = new WebSocket(`wss://${location.host}/api/v1${path}`);
      socket.onmessage = (e) => {
        try {
          handler.current(JSON.parse(String(e.data)) as LiveMessage);
        } catch {
          /* not JSON: ignored */
        }
      };
      socket.onclose = (e) => {
        // 1008: the session ended; anything else: try again in a while.
        if (!closed && e.code !== 1008) retry = window.setTimeout(open, 5000);
      };
    };
    open();
    return () => {
      closed = true;
      window.clearTimeout(retry);
      socket?.close();
    };
  }, [path]);
}

export type LiveMessage =
  | { type: "telemetry"; device: string; at: string; metrics: Record<string, unknown> }
  | { type: "status"; device: string; online: boolean; at: string }
  | { type: "dropped"; count: number };

function statusOf(d: DeviceDetail): { kind: string; text: string } {
  if (d.status !== "active") return { kind: "muted", text: d.status };
  if (d.certificates && d.certificates.length > 0 && d.certificates.every((c) => c.revoked)) {
    return { kind: "muted", text: "revoked" };
  }
  if (d.connected) return { kind: "ok", text: "online" };
  return { kind: "warn", text: "offline" };
}

function useDevices(): { devices: Device[] | null; error: unknown } {
  const [devices, set] = useState<Device[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    let stop = false;
    const load = () =>
      get<{ devices: Device[] }>("/devices")
        .then((r) => !stop && set(r.devices))
        .catch((e) => !stop && setError(e));
    load();
    const timer = window.setInterval(load, 30000);
    return () => {
      stop = true;
      window.clearInterval(timer);
    };
  }, [reload]);
  useLive("/live", (m) => {
    if (m.type !== "status" && m.type !== "telemetry") return;
    // A device the list does not have yet (just enrolled): the list is read again.
    if (devices && !devices.some((d) => d.id === m.device)) {
      setReload((n) => n + 1);
      return;
    }
    set((list) =>
      list
        ? list.map((d) =>
            d.id !== m.device ? d : { ...d, connected: m.type === "status" ? m.online : true, last_seen_at: m.at }
          )
        : list
    );
  });
  return { devices, error };
}

interface Expiring {
  device: string;
  serial: string;
  not_after: string;
  expired: boolean;
}

const kExpiringDays = 30;

interface SecurityEvent {
  seq: number;
  ts: string;
  action: string;
  object: string;
  outcome: string;
}

export function Overview({ session }: { session: Session }) {
  const { devices, error } = useDevices();
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [events, setEvents] = useState<SecurityEvent[] | null>(null);
  const [expiring, setExpiring] = useState<Expiring[]>([]);
  const auditor = may(session, "security_log.read");
  useEffect(() => {
    get<{ alerts: Alert[] }>("/alerts?status=open,acknowledged&limit=100")
      .then((r) => setAlerts(r.alerts))
      .catch(() => setAlerts([]));
    get<{ certificates: Expiring[] }>(`/certificates/expiring?days=${kExpiringDays}`)
      .then((r) => setExpiring(r.certificates))
      .catch(() => setExpiring([]));
    if (auditor) {
      get<{ events: SecurityEvent[] }>("/security-log?alert=true&limit=5")
        .then((r) => setEvents(r.events))
        .catch(() => setEvents(null));
    }
  }, [auditor]);
  if (error) return <FormError error={error} />;
  if (!devices || !alerts) return <Loading what="the fleet" />;
  const active = devices.filter((d) => d.status === "active");
  const online = active.filter((d) => d.connected).length;
  const alerting = new Set(alerts.filter((a) => a.device).map((a) => a.device));
  const critical = alerts.filter((a) => a.severity === "critical").length;
  return (
    <>
      <h1>Overview</h1>
      <div class="tiles">
        <Link class="tile" href="/devices">
          <span class="number" data-testid="online-count">{online}</span> online
        </Link>
        <Link class="tile" href="/devices">
          <span class="number">{active.length - online}</span> offline
        </Link>
        <Link class="tile" href="/devices">
          <span class="number">{devices.length - active.length}</span> disabled
        </Link>
        <Link class={`tile ${alerts.length ? "alerting" : ""}`} href="/alerts">
          <span class="number">{alerts.length}</span> open alerts{critical ? `, ${critical} critical` : ""}
        </Link>
        <Link class="tile" href="/alerts">
          <span class="number">{alerting.size}</span> devices with alerts
        </Link>
        <a class={`tile ${expiring.length ? "alerting" : ""}`} href="#expiring">
          <span class="number">{expiring.length}</span> certificates expiring within {kExpiringDays} days
        </a>
      </div>
      <h2>Latest alerts</h2>
      {alerts.length === 0 ? (
        <p class="empty">No open alerts.</p>
      ) : (
        <ul class="list">
          {alerts.slice(0, 5).map((a) => (
            <li key={a.id}>
              <Badge kind={a.severity}>{a.severity}</Badge> {a.title}
              {a.device && (
                <>
                  {" "}
                  on <Link href={`/devices/${encodeURIComponent(a.device)}`}>{a.device}</Link>
                </>
              )}{" "}
              <span class="muted">{ago(a.last_raised_at)}</span>
            </li>
          ))}
        </ul>
      )}
      <h2 id="expiring">Certificates expiring soon</h2>
      {expiring.length === 0 ? (
        <p class="empty">No device certificate expires within {kExpiringDays} days.</p>
      ) : (
        <ul class="list">
          {expiring.map((c) => (
            <li key={c.serial}>
              <Link href={`/devices/${encodeURIComponent(c.device)}`}>{c.device}</Link>:{" "}
              {c.expired ? <Badge kind="critical">expired</Badge> : "expires"} {when(c.not_after)}
            </li>
          ))}
        </ul>
      )}
      {events && (
        <>
          <h2>Recent security events</h2>
          {events.length === 0 ? (
            <p class="empty">No security alerts in the log.</p>
          ) : (
            <ul class="list">
              {events.map((e) => (
                <li key={e.seq}>
                  {e.action} <span class="muted">{e.object}</span> <span class="muted">{ago(e.ts)}</span>
                </li>
              ))}
            </ul>
          )}
          <Link href="/security-log">The security log</Link>
        </>
      )}
    </>
  );
}

// One of the device list's filters: "all" or one of the values the devices have.
function Choice({ label, value, options, onChange }: { label: string; value: string; options: string[]; onChange: (v: string) => void }) {
  return (
    <label>
      {label}{" "}
      <select value={value} onChange={(e) => onChange((e.currentTarget as HTMLSelectElement).value)}>
        <option value="">all</option>
        {options.map((x) => (
          <option key={x} value={x}>
            {x}
          </option>
        ))}
      </select>
    </label>
  );
}

export function Devices({ session }: { session: Session }) {
  const { devices, error } = useDevices();
  const [query, setQuery] = useState("");
  const [filter, setFilter] = useState("all");
  const [profile, setProfile] = useState("");
  const [segment, setSegment] = useState("");
  const [tag, setTag] = useState("");
  const profiles = useMemo(() => [...new Set((devices ?? []).map((d) => d.profile).filter(Boolean))].sort(), [devices]);
  const segments = useMemo(() => [...new Set((devices ?? []).map((d) => d.segment).filter(Boolean))].sort(), [devices]);
  const tags = useMemo(() => [...new Set((devices ?? []).flatMap((d) => d.tags ?? []))].sort(), [devices]);
  const shown = useMemo(() => {
    const q = query.trim().toLowerCase();
    return (devices ?? []).filter((d) => {
      const s = statusOf(d).text;
      if (filter !== "all" && s !== filter) return false;
      if (profile && d.profile !== profile) return false;
      if (segment && d.segment !== segment) return false;
      if (tag && !(d.tags ?? []).includes(tag)) return false;
      return !q || [d.id, d.name, d.profile, d.segment, ...(d.tags ?? [])].some((f) => f.toLowerCase().includes(q));
    });
  }, [devices, query, filter, profile, segment, tag]);
  if (error) return <FormError error={error} />;
  if (!devices) return <Loading what="devices" />;
  return (
    <>
      <div class="title-row">
        <h1>Devices</h1>
        {may(session, "devices.write") && (
          <Link class="button" href="/devices/new">
            Add device
          </Link>
        )}
      </div>
      <div class="toolbar">
        <label>
          Search <input type="search" value={query} onInput={(e) => setQuery((e.currentTarget as HTMLInputElement).value)} placeholder="id, name, profile, segment, tag" />
        </label>
        <label>
          Status{" "}
          <select value={filter} onChange={(e) => setFilter((e.currentTarget as HTMLSelectElement).value)}>
            <option value="all">all</option>
            <option value="online">online</option>
            <option value="offline">offline</option>
            <option value="disabled">disabled</option>
          </select>
        </label>
        {profiles.length > 0 && <Choice label="Profile" value={profile} options={profiles} onChange={setProfile} />}
        {segments.length > 1 && <Choice label="Segment" value={segment} options={segments} onChange={setSegment} />}
        {tags.length > 0 && <Choice label="Tag" value={tag} options={tags} onChange={setTag} />}
      </div>
      {devices.length === 0 ? (
        <p class="empty">
          No devices yet. Create one with <code>torii admin device create</code> and enrol it with <code>torii agent enroll</code>.
        </p>
      ) : shown.length === 0 ? (
        <p class="empty">No device matches.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Status</th>
                <th scope="col">Profile</th>
                <th scope="col">Segment</th>
                <th scope="col">Tags</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((d) => {
                const s = statusOf(d);
                return (
                  <tr key={d.id}>
                    <td>
                      <Link href={`/devices/${encodeURIComponent(d.id)}`}>{d.name || d.id}</Link>
                      {d.name && d.name !== d.id && <div class="muted">{d.id}</div>}
                    </td>
                    <td>
                      <Badge kind={s.kind}>{s.text}</Badge>
                    </td>
                    <td>{d.profile || "—"}</td>
                    <td>{d.segment || "—"}</td>
                    <td>{(d.tags ?? []).join(", ") || "—"}</td>
                    <td title={when(d.last_seen_at)}>{ago(d.last_seen_at)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

// How far back the chart reads the store (averaged into at most 300 points), then live.
const kRanges: [string, number][] = [
  ["the last hour", 60],
  ["the last 24 hours", 24 * 60],
  ["the last 7 days", 7 * 24 * 60],
];

export function DevicePage({ id, session }: { id: string; session: Session }) {
  const [device, setDevice] = useState<DeviceDetail | null>(null);
  const [latest, setLatest] = useState<Record<string, { value: unknown; at: string }>>({});
  const [error, setError] = useState<unknown>(null);
  const [metric, setMetric] = useState("");
  const [series, setSeries] = useState<Series>({ t: [], v: [] });
  const [minutes, setMinutes] = useState(60);

  useEffect(() => {
    setDevice(null);
    setError(null);
    get<DeviceDetail>(`/devices/${encodeURIComponent(id)}`).then(setDevice).catch(setError);
    get<{ latest: Record<string, { value: unknown; at: string }> }>(`/devices/${encodeURIComponent(id)}/latest`)
      .then((r) => {
        setLatest(r.latest);
        const numeric = Object.keys(r.latest).filter((k) => typeof r.latest[k].value === "number").sort();
        setMetric((m) => m || numeric[0] || "");
      })
      .catch(() => setLatest({}));
  }, [id]);

  useEffect(() => {
    if (!metric) return;
    const from = new Date(Date.now() - minutes * 60000).toISOString();
    get<{ buckets: Bucket[] }>(`/devices/${encodeURIComponent(id)}/telemetry?metric=${encodeURIComponent(metric)}&from=${from}&points=300`)
      .then((r) => {
        const t = r.buckets.map((b) => (new Date(b.from).getTime() + new Date(b.to).getTime()) / 2000);
        setSeries({ t, v: r.buckets.map((b) => b.avg) });
      })
      .catch(() => setSeries({ t: [], v: [] }));
  }, [id, metric, minutes]);

  // Opened once the device is known to exist here.
  useLive(device ? `/devices/${encodeURIComponent(id)}/live` : null, (m) => {
    if (m.type === "status") setDevice((d) => (d ? { ...d, connected: m.online } : d));
    if (m.type !== "telemetry") return;
    setDevice((d) => (d ? { ...d, connected: true, last_seen_at: m.at } : d));
    setLatest((l) => {
      const next = { ...l };
      for (const [k, v] of Object.entries(m.metrics)) next[k] = { value: v, at: m.at };
      return next;
    });
    setMetric((current) => current || Object.keys(m.metrics).find((k) => typeof m.metrics[k] === "number") || "");
    const v = m.metrics[metric];
    if (typeof v === "number") {
      const t = new Date(m.at).getTime() / 1000;
      setSeries((s) => ({ t: [...s.t, t].slice(-2000), v: [...s.v, v].slice(-2000) }));
    }
  });

  if (error) {
    if (error instanceof ApiError && error.status === 404) {
      return (
        <>
          <h1>No such device</h1>
          <p class="empty">There is no device {id} in your organisation.</p>
        </>
      );
    }
    return <FormError error={error} />;
  }
  if (!device) return <Loading what={`device ${id}`} />;
  const s = statusOf(device);
  const names = Object.keys(latest).sort();
  const numeric = names.filter((k) => typeof latest[k].value === "number");
  return (
    <>
      <p class="crumbs">
        <Link href="/devices">Devices</Link> /
      </p>
      <h1>
        {device.name || device.id} <Badge kind={s.kind}>{s.text}</Badge>
      </h1>
      <dl class="facts">
        <dt>Id</dt>
        <dd>{device.id}</dd>
        <dt>Profile</dt>
        <dd>{device.profile || "—"}</dd>
        <dt>Segment</dt>
        <dd>{device.segment || "—"}</dd>
        <dt>Tags</dt>
        <dd data-testid="tags">{(device.tags ?? []).join(", ") || "—"}</dd>
        <dt>Last seen</dt>
        <dd data-testid="last-seen" title={when(device.last_seen_at)}>{ago(device.last_seen_at)}</dd>
        {device.counters && (
          <>
            <dt>Traffic</dt>
            <dd>
              {device.counters.messages} messages, {device.counters.bytes} bytes, {device.counters.refusals} refused, {device.counters.connects} connects
            </dd>
          </>
        )}
        {device.certificates?.filter((c) => !c.revoked).map((c) => (
          <>
            <dt>Certificate</dt>
            <dd>expires {when(c.not_after)}</dd>
          </>
        ))}
      </dl>
      <DeviceActions device={device} session={session} onChange={setDevice} />
      {may(session, "devices.write") && <TagsEditor device={device} onChange={setDevice} />}
      <DeviceAlerts id={device.id} />
      <h2>Latest values</h2>
      {names.length === 0 ? (
        <p class="empty">No telemetry yet.</p>
      ) : (
        <div class="table-wrap">
          <table data-testid="latest">
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col">Value</th>
                <th scope="col">At</th>
              </tr>
            </thead>
            <tbody>
              {names.map((k) => (
                <tr key={k}>
                  <td>{k}</td>
                  <td class="num">{value(latest[k].value)}</td>
                  <td>{when(latest[k].at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {numeric.length > 0 && (
        <>
          <h2>
            <label>
              Chart{" "}
              <select value={metric} onChange={(e) => setMetric((e.currentTarget as HTMLSelectElement).value)}>
                {numeric.map((k) => (
                  <option key={k} value={k}>
                    {k}
                  </option>
                ))}
              </select>
            </label>
          </h2>
          <label>
            Over{" "}
            <select value={minutes} onChange={(e) => setMinutes(Number((e.currentTarget as HTMLSelectElement).value))}>
              {kRanges.map(([label, m]) => (
                <option key={m} value={m}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <Chart label={metric} series={series} span={minutes * 60} />
          <p class="muted">Stored averages, then live as it arrives. Drag across the chart to zoom, double-click to reset.</p>
        </>
      )}
    </>
  );
}

// Tags separated by commas or spaces, as people type them.
function parseTags(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

// The device's tags, which rules select devices by; they take effect on the running rules at once.
function TagsEditor({ device, onChange }: { device: DeviceDetail; onChange: (d: DeviceDetail) => void }) {
  const [text, setText] = useState((device.tags ?? []).join(", "));
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const save = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(false);
    try {
      const path = `/devices/${encodeURIComponent(device.id)}`;
      await put(`${path}/tags`, { tags: parseTags(text) });
      const next = await get<DeviceDetail>(path);
      setText((next.tags ?? []).join(", "));
      onChange(next);
      setDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card narrow" aria-label="Device tags" onSubmit={save} noValidate>
      <Field
        label="Tags"
        name="tags"
        value={text}
        onInput={setText}
        error={error instanceof ApiError ? error : null}
        hint="Labels rules select devices by (a rule's selector.tags), separated by commas: cold-room, floor-2."
      />
      <button type="submit" class="secondary" disabled={busy}>
        {busy ? "Saving…" : "Save tags"}
      </button>
      {done && <Notice kind="ok">Tags saved: rules that select them follow at once.</Notice>}
      <FormError error={error} fields={["tags"]} />
    </form>
  );
}

// Disable / enable, revoke the certificates, delete with all its data. What cannot be undone
// asks for confirmation here and for a recent proof of identity on the server (step-up).
function DeviceActions({ device, session, onChange }: { device: DeviceDetail; session: Session; onChange: (d: DeviceDetail) => void }) {
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState("");
  const [busy, setBusy] = useState(false);
  const write = may(session, "devices.write");
  const remove = may(session, "devices.delete");
  if (!write && !remove) return null;
  const path = `/devices/${encodeURIComponent(device.id)}`;
  const run = async (what: string, action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    setDone("");
    try {
      await action();
      setDone(what);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const reload = async () => onChange(await get<DeviceDetail>(path));
  const revocable = (device.certificates ?? []).some((c) => !c.revoked);
  return (
    <section aria-label="Actions">
      <div class="actions">
        {write && device.status === "active" && (
          <button type="button" class="secondary" disabled={busy} onClick={() => run("Disabled: its connection was closed.", async () => {
            await post(`${path}/disable`, { reason: "disabled in the console" });
            await reload();
          })}>
            Disable
          </button>
        )}
        {write && device.status === "disabled" && (
          <button type="button" class="secondary" disabled={busy} onClick={() => run("Enabled.", async () => {
            await post(`${path}/enable`);
            await reload();
          })}>
            Enable
          </button>
        )}
        {write && revocable && (
          <button type="button" class="secondary danger" disabled={busy} onClick={() => {
            if (!confirm(`Revoke the certificates of ${device.id}? It is refused from now on and must enrol again.`)) return;
            void run("Revoked: the device is refused from now on.", async () => {
              await post(`${path}/revoke`, { reason: "revoked in the console" });
              await reload();
            });
          }}>
            Revoke certificates
          </button>
        )}
        {remove && (
          <button type="button" class="secondary danger" disabled={busy} onClick={() => {
            if (!confirm(`Delete ${device.id} and all its data? This cannot be undone.`)) return;
            void run("Deleted.", async () => {
              await del(path);
              navigate("/devices");
            });
          }}>
            Delete with its data
          </button>
        )}
      </div>
      {done && <Notice kind="ok">{done}</Notice>}
      <FormError error={error} />
    </section>
  );
}

interface Profile {
  id: string;
  name: string;
}

interface Bundle {
  device: Device;
  certificate_pem: string;
  ca_bundle_pem: string;
  private_key_pem: string;
}

// A new device awaiting enrolment: its one-time token is shown here once, with what to run
// on the device (the key is made there and never leaves it).
export function AddDevice() {
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [profile, setProfile] = useState("");
  const [segment, setSegment] = useState("");
  const [tags, setTags] = useState("");
  const [profiles, setProfiles] = useState<Profile[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState<{ device: Device; enrolment_token: string; enrolment_expires_at: string } | null>(null);
  const [bundle, setBundle] = useState<Bundle | null>(null);
  const [how, setHow] = useState<"enrolment" | "bundle">("enrolment");

  useEffect(() => {
    get<{ profiles: Profile[] }>("/profiles")
      .then((r) => setProfiles(r.profiles))
      .catch(() => setProfiles([]));
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const body: Record<string, unknown> = { id: id.trim() };
    if (how === "enrolment") body.enrolment = true;
    if (name.trim()) body.name = name.trim();
    if (profile) body.profile = profile;
    if (segment.trim()) body.segment = segment.trim();
    if (parseTags(tags).length > 0) body.tags = parseTags(tags);
    try {
      if (how === "enrolment") setMade(await post("/devices", body));
      else setBundle(await post<Bundle>("/devices", body));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (bundle) {
    return (
      <>
        <h1>Certificate bundle of {bundle.device.id}</h1>
        <Notice kind="ok">
          <p>
            The device's key was made here and is shown only now: torii keeps no copy. Put the three files on the device
            (the key readable by its agent only), then forget this page.
          </p>
        </Notice>
        <h2>key.pem</h2>
        <pre class="commands" data-testid="bundle-key">{bundle.private_key_pem}</pre>
        <h2>certificate.pem</h2>
        <pre class="commands">{bundle.certificate_pem}</pre>
        <h2>ca.pem</h2>
        <pre class="commands">{bundle.ca_bundle_pem}</pre>
        <p>
          <Link href={`/devices/${encodeURIComponent(bundle.device.id)}`}>Go to {bundle.device.id}</Link>
        </p>
      </>
    );
  }
  if (made) {
    const server = location.origin;
    return (
      <>
        <h1>Enrol {made.device.id}</h1>
        <Notice kind="ok">
          <p>
            The device is registered and waits for its agent. Its one-time enrolment token is shown only now; it works once,
            until {when(made.enrolment_expires_at)}.
          </p>
        </Notice>
        <p>
          Token: <code data-testid="enrolment-token">{made.enrolment_token}</code>
        </p>
        <p>On the device, as root, with torii's CA bundle in ca.pem (torii admin ca export on this server's host):</p>
        <pre class="commands">
          {`torii-agent run --print-default-config > /etc/torii/agent.toml  # set gateway, server = "${server}", sensors
torii-agent enroll --config /etc/torii/agent.toml --ca ca.pem --token-file -   # paste the token, then Ctrl-D
torii-agent run --config /etc/torii/agent.toml`}
        </pre>
        <p>The agent makes its key on the device, sends a certificate request with the token and publishes from then on.</p>
        <p>
          <Link href={`/devices/${encodeURIComponent(made.device.id)}`}>Go to {made.device.id}</Link>
        </p>
      </>
    );
  }
  const apiError = error instanceof ApiError ? error : null;
  return (
    <>
      <p class="crumbs">
        <Link href="/devices">Devices</Link> /
      </p>
      <h1>Add a device</h1>
      <form class="card narrow" onSubmit={submit} noValidate>
        <Field label="Device id" name="id" value={id} onInput={setId} error={apiError} hint="Lower-case letters, digits and '-', starting with a letter or digit: the name in its certificate and topics." required autoFocus />
        <Field label="Name (optional)" name="name" value={name} onInput={setName} error={apiError} />
        <div class="field">
          <label for="profile">Profile</label>
          <select id="profile" value={profile} onChange={(e) => setProfile((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">none</option>
            {profiles.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name || p.id}
              </option>
            ))}
          </select>
          {apiError?.field("profile") && <p class="field-error">{apiError.field("profile")}</p>}
        </div>
        <Field label="Segment (optional)" name="segment" value={segment} onInput={setSegment} error={apiError} hint="The network segment its routes are drawn between; default: default." />
        <Field label="Tags (optional)" name="tags" value={tags} onInput={setTags} error={apiError} hint="Labels rules select devices by, separated by commas: cold-room, floor-2. Changeable later." />
        <fieldset>
          <legend>Its key</legend>
          <label class="check">
            <input type="radio" name="how" checked={how === "enrolment"} onChange={() => setHow("enrolment")} /> made on the device by
            torii-agent (a one-time enrolment token)
          </label>
          <label class="check">
            <input type="radio" name="how" checked={how === "bundle"} onChange={() => setHow("bundle")} /> made here, with its
            certificate (a bundle shown once, for devices without the agent)
          </label>
        </fieldset>
        <FormError error={error} fields={["id", "name", "profile", "segment", "tags"]} />
        <button type="submit" disabled={busy}>
          {busy ? "Registering…" : how === "enrolment" ? "Register and get an enrolment token" : "Register and get its certificate bundle"}
        </button>
      </form>
    </>
  );
}

// The device's alerts not yet resolved: missed heartbeats, irregular sensors, posture
// violations of its host (open ports, remote-access services, Wi-Fi), rules.
function DeviceAlerts({ id }: { id: string }) {
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  useEffect(() => {
    get<{ alerts: Alert[] }>(`/alerts?device=${encodeURIComponent(id)}&status=open,acknowledged&limit=20`)
      .then((r) => setAlerts(r.alerts))
      .catch(() => setAlerts(null));
  }, [id]);
  if (alerts === null) return null;
  return (
    <>
      <h2>Alerts and posture findings</h2>
      {alerts.length === 0 ? (
        <p class="empty">Nothing open for this device.</p>
      ) : (
        <ul class="list" data-testid="device-alerts">
          {alerts.map((a) => (
            <li key={a.id}>
              <Badge kind={a.severity}>{a.severity}</Badge> {a.title} <span class="muted">{a.summary}</span>{" "}
              <span class="muted">{ago(a.last_raised_at)}</span>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
