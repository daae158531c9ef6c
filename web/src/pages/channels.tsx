// Notification channels (docs/notifications.md): where an organisation's alerts go — signed
// webhooks, e-mail, syslog over TLS. A webhook's signing secret is shown once, when made.
import { useEffect, useState } from "preact/hooks";
import { ApiError, del, get, may, post, type Session } from "../api";
import { when } from "../format";
import { Badge, FormError, Loading, Notice } from "../ui";

interface Channel {
  id: string;
  name: string;
  type: string;
  min_severity: string;
  enabled: boolean;
  updated_at: string;
  secret?: string;
}

const kExample = { name: "ops hook", type: "webhook", url: "https://hooks.example/torii" };

export function Channels({ session }: { session: Session }) {
  const [channels, setChannels] = useState<Channel[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState("");
  const [reload, setReload] = useState(0);
  const [id, setId] = useState("");
  const [text, setText] = useState(JSON.stringify(kExample, null, 2));
  const [severity, setSeverity] = useState("warning");
  const writable = may(session, "channels.write");

  useEffect(() => {
    get<{ channels: Channel[] }>("/channels")
      .then((r) => setChannels(r.channels))
      .catch(setError);
  }, [reload]);

  const run = async (action: () => Promise<string>) => {
    setError(null);
    setNotice("");
    try {
      setNotice(await action());
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    }
  };
  const create = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      let definition: unknown;
      try {
        definition = JSON.parse(text);
      } catch (err) {
        throw new ApiError({ status: 400, code: "invalid_json", title: `The definition is not JSON: ${(err as Error).message}` });
      }
      const made = await post<Channel>("/channels", { id: id.trim(), definition, min_severity: severity });
      setId("");
      return made.secret
        ? `Channel ${made.id} added. Its signing secret, shown only now: ${made.secret}`
        : `Channel ${made.id} added.`;
    });
  };

  return (
    <>
      <h1>Notification channels</h1>
      {notice && (
        <Notice kind="ok">
          <p data-testid="channel-notice">{notice}</p>
        </Notice>
      )}
      <FormError error={error} fields={["id", "definition", "min_severity"]} />
      {!channels ? (
        !error && <Loading what="channels" />
      ) : channels.length === 0 ? (
        <p class="empty">No channels: alerts stay in the console until one is added.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Channel</th>
                <th scope="col">Type</th>
                <th scope="col">Alerts from</th>
                <th scope="col">Changed</th>
                {writable && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {channels.map((c) => (
                <tr key={c.id}>
                  <td>
                    {c.name} <span class="muted">({c.id})</span> {!c.enabled && <Badge kind="muted">disabled</Badge>}
                  </td>
                  <td>{c.type}</td>
                  <td>{c.min_severity === "none" ? "only rules naming it" : `${c.min_severity} and above`}</td>
                  <td>{when(c.updated_at)}</td>
                  {writable && (
                    <td class="actions">
                      <button type="button" class="secondary" onClick={() => run(async () => {
                        const r = await post<{ delivery: string }>(`/channels/${encodeURIComponent(c.id)}/test`);
                        return `A test notice is queued for ${c.id} (delivery ${r.delivery}).`;
                      })}>
                        Send a test
                      </button>
                      <button type="button" class="secondary danger" onClick={() => {
                        if (!confirm(`Delete the channel ${c.id}?`)) return;
                        void run(async () => {
                          await del(`/channels/${encodeURIComponent(c.id)}`);
                          return `Channel ${c.id} deleted.`;
                        });
                      }}>
                        Delete
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {writable && (
        <form class="card narrow" onSubmit={create} noValidate>
          <h2>Add a channel</h2>
          <div class="field">
            <label for="channel-id">Channel id</label>
            <input id="channel-id" value={id} onInput={(e) => setId((e.currentTarget as HTMLInputElement).value)} required />
          </div>
          <div class="field">
            <label for="channel-definition">Definition (JSON: webhook, email, syslog or mqtt; docs/notifications.md)</label>
            <textarea id="channel-definition" class="code" rows={8} spellcheck={false} value={text} onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)} />
          </div>
          <div class="field">
            <label for="channel-severity">Alerts of at least</label>
            <select id="channel-severity" value={severity} onChange={(e) => setSeverity((e.currentTarget as HTMLSelectElement).value)}>
              <option value="info">info</option>
              <option value="warning">warning</option>
              <option value="critical">critical</option>
              <option value="none">none: only rules that name it</option>
            </select>
          </div>
          <button type="submit">Add the channel</button>
        </form>
      )}
    </>
  );
}
