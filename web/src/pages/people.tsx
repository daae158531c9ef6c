// People and organisations (org and system administrators), and the page a one-time
// password link opens. New people start without a password: they set one through their link.
import { useEffect, useState } from "preact/hooks";
import { ApiError, del, get, may, patch, post, type Session, type User } from "../api";
import { ago, when } from "../format";
import { navigate, takeFragmentToken } from "../router";
import { Badge, Field, FormError, Loading, Notice, PermissionChoice, passwordsDiffer } from "../ui";

interface Person extends User {
  status: string;
  created_at: string;
  last_login_at: string | null;
  expires_at: string | null;
  locked: boolean;
  has_password: boolean;
}

interface Organisation {
  id: string;
  name: string;
  require_second_factor: boolean;
}

interface PasswordLink {
  password_link: string;
  expires_at: string;
}

function LinkShownOnce({ who, link }: { who: string; link: PasswordLink }) {
  return (
    <Notice kind="ok">
      <p>
        Give {who} this one-time link to set a password (it works once, until {when(link.expires_at)}; it is not shown
        again):
      </p>
      <p>
        <code data-testid="password-link">{link.password_link}</code>
      </p>
    </Notice>
  );
}

export function People({ session }: { session: Session }) {
  const [people, setPeople] = useState<Person[] | null>(null);
  const [roles, setRoles] = useState<Role[] | null>(null);
  const [organisations, setOrganisations] = useState<Organisation[]>([]);
  const [organisation, setOrganisation] = useState(session.user.organisation);
  const [error, setError] = useState<unknown>(null);
  const [reload, setReload] = useState(0);
  const [link, setLink] = useState<{ who: string; link: PasswordLink } | null>(null);
  const acrossOrganisations = may(session, "organisations.read");

  useEffect(() => {
    setError(null);
    const q = `?organisation=${encodeURIComponent(organisation)}`;
    get<{ people: Person[] }>(`/users${q}`)
      .then((r) => setPeople(r.people))
      .catch(setError);
    get<{ roles: Role[] }>(`/roles${q}`)
      .then((r) => setRoles(r.roles))
      .catch(() => setRoles(null));
  }, [organisation, reload]);

  useEffect(() => {
    if (!acrossOrganisations) return;
    get<{ organisations: Organisation[] }>("/organisations")
      .then((r) => setOrganisations(r.organisations))
      .catch(() => setOrganisations([]));
  }, [acrossOrganisations, reload]);

  const act = async (p: Person, what: "unlock" | "password-link") => {
    setError(null);
    try {
      if (what === "unlock") await post(`/users/${encodeURIComponent(p.id)}/unlock`);
      else setLink({ who: p.username, link: await post<PasswordLink>(`/users/${encodeURIComponent(p.id)}/password-link`, { send: "answer" }) });
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <>
      <h1>People</h1>
      {acrossOrganisations && organisations.length > 0 && (
        <div class="toolbar">
          <label>
            Organisation{" "}
            <select value={organisation} onChange={(e) => setOrganisation((e.currentTarget as HTMLSelectElement).value)}>
              {organisations.map((o) => (
                <option key={o.id} value={o.id}>
                  {o.name || o.id}
                </option>
              ))}
            </select>
          </label>
        </div>
      )}
      {link && <LinkShownOnce who={link.who} link={link.link} />}
      <FormError error={error} />
      {!people ? (
        <Loading what="people" />
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Person</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Second factor</th>
                <th scope="col">Last sign-in</th>
                {may(session, "users.write") && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {people.map((p) => (
                <tr key={p.id}>
                  <td>
                    {p.username}
                    <div class="muted">{p.email}</div>
                  </td>
                  <td>{p.role}</td>
                  <td>
                    <Badge kind={p.status === "active" ? "ok" : "muted"}>{p.status}</Badge>
                    {p.locked && <Badge kind="warn">locked</Badge>}
                    {!p.has_password && <Badge kind="muted">no password yet</Badge>}
                  </td>
                  <td>{p.second_factor ? "TOTP" : "—"}</td>
                  <td title={when(p.last_login_at)}>{ago(p.last_login_at)}</td>
                  {may(session, "users.write") && (
                    <td class="actions">
                      {p.locked && (
                        <button type="button" class="secondary" onClick={() => act(p, "unlock")}>
                          Unlock
                        </button>
                      )}
                      {p.id !== session.user.id && (
                        <button type="button" class="secondary" onClick={() => act(p, "password-link")}>
                          New password link
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {may(session, "users.write") && (
        <AddPerson organisation={organisation} roles={(roles ?? []).map((r) => r.name)} onAdded={(who, l) => { setLink({ who, link: l }); setReload((n) => n + 1); }} />
      )}
      {roles && <Roles session={session} organisation={organisation} roles={roles} onChange={() => setReload((n) => n + 1)} />}
      {may(session, "organisations.write") && (
        <Organisations organisations={organisations} onChange={() => setReload((n) => n + 1)} />
      )}
      {may(session, "organisations.write") && <AddOrganisation onAdded={(id) => { setOrganisation(id); setReload((n) => n + 1); }} />}
    </>
  );
}

interface Role {
  name: string;
  description: string;
  builtin: boolean;
  permissions: string[];
}

// The built-in roles and the organisation's own: sets of named permissions (docs/permissions.md).
// The page reads them (its person form offers them too) and reads them again on onChange.
function Roles(p: { session: Session; organisation: string; roles: Role[]; onChange: () => void }) {
  const { session, organisation, roles, onChange } = p;
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [chosen, setChosen] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  const q = `?organisation=${encodeURIComponent(organisation)}`;
  const writable = may(session, "users.write");
  const grantable = (session.permissions ?? []).filter((p) => !["settings.write", "organisations.write", "organisations.read"].includes(p));
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await post("/roles", { name: name.trim(), description: description.trim(), permissions: chosen, organisation });
      setName("");
      setDescription("");
      setChosen([]);
      onChange();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (r: Role) => {
    setError(null);
    try {
      await del(`/roles/${encodeURIComponent(r.name)}${q}`);
      onChange();
    } catch (err) {
      setError(err);
    }
  };
  const apiError = error instanceof ApiError ? error : null;
  return (
    <section>
      <h2>Roles</h2>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Role</th>
              <th scope="col">Permissions</th>
              {writable && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {roles.map((r) => (
              <tr key={r.name}>
                <td>
                  {r.name} {r.builtin && <Badge kind="muted">built-in</Badge>}
                  {r.description && <div class="muted">{r.description}</div>}
                </td>
                <td>{r.permissions.join(", ")}</td>
                {writable && (
                  <td>
                    {!r.builtin && (
                      <button type="button" class="secondary" onClick={() => remove(r)}>
                        Delete
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {writable && (
        <form class="card narrow" onSubmit={submit} noValidate>
          <h3>Add a role</h3>
          <Field label="Role name" name="name" value={name} onInput={setName} error={apiError} required />
          <Field label="Description" name="description" value={description} onInput={setDescription} error={apiError} />
          <PermissionChoice legend="Permissions (within your own)" offered={grantable} chosen={chosen} onChange={setChosen} />
          <FormError error={error} fields={["name", "description"]} />
          <button type="submit">Add the role</button>
        </form>
      )}
    </section>
  );
}

// The system administrator's: whether everyone in an organisation must use a second factor.
function Organisations({ organisations, onChange }: { organisations: Organisation[]; onChange: () => void }) {
  const [error, setError] = useState<unknown>(null);
  // A switch shows its new state while the change is on its way, until a list read back
  // agrees with it: a list read after an earlier switch must not undo a later one.
  const [pending, setPending] = useState<Record<string, boolean>>({});
  useEffect(
    () =>
      setPending((p) =>
        Object.fromEntries(
          Object.entries(p).filter(([id, on]) => organisations.find((o) => o.id === id)?.require_second_factor !== on),
        ),
      ),
    [organisations],
  );
  if (organisations.length === 0) return null;
  const toggle = async (o: Organisation, on: boolean) => {
    setError(null);
    setPending((p) => ({ ...p, [o.id]: on }));
    try {
      await patch(`/organisations/${encodeURIComponent(o.id)}`, { require_second_factor: on });
      onChange();
    } catch (err) {
      setPending((p) => {
        const { [o.id]: _dropped, ...rest } = p;
        return rest;
      });
      setError(err);
    }
  };
  return (
    <section>
      <h2>Organisations</h2>
      <FormError error={error} />
      <ul class="list">
        {organisations.map((o) => (
          <li key={o.id}>
            <strong>{o.name}</strong> <span class="muted">({o.id})</span>{" "}
            <label class="check">
              <input type="checkbox" checked={pending[o.id] ?? o.require_second_factor} onChange={(e) => toggle(o, (e.currentTarget as HTMLInputElement).checked)} />{" "}
              everyone must use a second factor
            </label>
          </li>
        ))}
      </ul>
    </section>
  );
}

function AddPerson({ organisation, roles, onAdded }: { organisation: string; roles: string[]; onAdded: (who: string, link: PasswordLink) => void }) {
  const [username, setUsername] = useState("");
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("viewer");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const made = await post<PasswordLink & { username: string }>("/users", { username: username.trim(), email: email.trim(), role, organisation });
      setUsername("");
      setEmail("");
      onAdded(made.username, made);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const apiError = error instanceof ApiError ? error : null;
  return (
    <form class="card narrow" onSubmit={submit} noValidate>
      <h2>Add a person</h2>
      <Field label="User name" name="username" value={username} onInput={setUsername} autoComplete="off" error={apiError} required />
      <Field label="E-mail" name="email" type="email" value={email} onInput={setEmail} autoComplete="off" error={apiError} required />
      <div class="field">
        <label for="role">Role</label>
        <select id="role" value={role} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value)}>
          {(roles.length ? roles : ["viewer"]).map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        {apiError?.field("role") && <p class="field-error">{apiError.field("role")}</p>}
      </div>
      <FormError error={error} fields={["username", "email", "role"]} />
      <button type="submit" disabled={busy}>
        {busy ? "Adding…" : "Add and get a password link"}
      </button>
    </form>
  );
}

function AddOrganisation({ onAdded }: { onAdded: (id: string) => void }) {
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [required, setRequired] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await post("/organisations", { id: id.trim(), name: name.trim() || id.trim(), require_second_factor: required });
      setId("");
      setName("");
      onAdded(id.trim());
    } catch (err) {
      setError(err);
    }
  };
  const apiError = error instanceof ApiError ? error : null;
  return (
    <form class="card narrow" onSubmit={submit} noValidate>
      <h2>Add an organisation</h2>
      <Field label="Organisation id" name="id" value={id} onInput={setId} error={apiError} required />
      <Field label="Name" name="name" value={name} onInput={setName} error={apiError} />
      <label class="check">
        <input type="checkbox" checked={required} onChange={(e) => setRequired((e.currentTarget as HTMLInputElement).checked)} /> everyone must use
        a second factor
      </label>
      <FormError error={error} fields={["id", "name"]} />
      <button type="submit">Add the organisation</button>
    </form>
  );
}

// /password#<token>: a one-time link from an administrator (or a reset by e-mail). The token
// stays in the fragment, never sent, and leaves the address bar at once.
let passwordToken = "";

export function SetPassword() {
  if (!passwordToken) passwordToken = takeFragmentToken("/password");
  const [password, setPassword] = useState("");
  const [repeat, setRepeat] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  if (done) {
    return (
      <section class="card narrow">
        <h1>Password set</h1>
        <p>Sign in with it now.</p>
        <button type="button" onClick={() => navigate("/sign-in", true)}>
          Sign in
        </button>
      </section>
    );
  }
  if (!passwordToken) {
    return (
      <section class="card narrow">
        <h1>Set a password</h1>
        <Notice kind="error">Open the one-time link you were given: it carries the token.</Notice>
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
      await post("/password-link", { token: passwordToken, new_password: password });
      passwordToken = "";
      setDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const apiError = error instanceof ApiError ? error : null;
  return (
    <section class="card narrow">
      <h1>Set a password</h1>
      <form onSubmit={submit} noValidate>
        <Field label="New password" name="new_password" type="password" value={password} onInput={setPassword} autoComplete="new-password" error={apiError} hint="At least 12 characters; common, breached or guessable passwords are refused." required autoFocus />
        <Field label="New password again" name="repeat" type="password" value={repeat} onInput={setRepeat} autoComplete="new-password" error={apiError} required />
        <FormError error={error} fields={["new_password", "repeat"]} />
        <button type="submit" disabled={busy}>
          {busy ? "Saving…" : "Set the password"}
        </button>
      </form>
    </section>
  );
}
