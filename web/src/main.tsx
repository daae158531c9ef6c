// The torii web console: served by `torii server`, it talks only to its REST API and live
// WebSocket. Who is signed in comes from GET /api/v1/session at load; nothing is stored in
// the browser beyond the session's HttpOnly cookie.
import { render, type ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { del, get, may, setCsrfToken, type Session } from "./api";
import { navigate, onLinkClick, usePath } from "./router";
import { EnrolTotp, Setup, SignIn } from "./pages/auth";
import { AddDevice, DevicePage, Devices, Overview } from "./pages/fleet";
import { People, SetPassword } from "./pages/people";
import { SecurityLog } from "./pages/security";
import { Account } from "./pages/account";
import { RuleEditor, Rules } from "./pages/rules";
import { Channels } from "./pages/channels";
import { About, SettingsPage } from "./pages/settings";
import { StepUpDialog } from "./stepup";
import { Alerts } from "./pages/alerts";
import { Loading } from "./ui";
import "./style.css";

// The pages, and the permission each needs; the server checks every request all the same.
const kNav: [string, string, string][] = [
  ["/", "Overview", "devices.read"],
  ["/devices", "Devices", "devices.read"],
  ["/alerts", "Alerts", "alerts.read"],
  ["/rules", "Rules", "rules.read"],
  ["/channels", "Channels", "channels.read"],
  ["/people", "People", "users.read"],
  ["/security-log", "Security log", "security_log.read"],
  ["/settings", "Settings", "settings.read"],
  ["/about", "About", "settings.read"],
];

function Forbidden() {
  return (
    <>
      <h1>Not for your role</h1>
      <p>Your role does not include this page. An administrator of your organisation can change that.</p>
    </>
  );
}

function View({ path, session }: { path: string; session: Session }) {
  const page = (permission: string, view: preact.JSX.Element) => (may(session, permission) ? view : <Forbidden />);
  if (path === "/" && !may(session, "devices.read")) {
    // A role without the fleet (a custom one, say) starts at the first page it has.
    const first = kNav.find(([, , permission]) => may(session, permission));
    if (first) {
      navigate(first[0], true);
      return null;
    }
  }
  if (path === "/") return page("devices.read", <Overview session={session} />);
  if (path === "/devices") return page("devices.read", <Devices session={session} />);
  if (path === "/devices/new") return page("devices.write", <AddDevice />);
  const device = /^\/devices\/([^/]+)$/.exec(path);
  if (device) return page("devices.read", <DevicePage id={decodeURIComponent(device[1])} session={session} />);
  if (path === "/alerts") return page("alerts.read", <Alerts />);
  if (path === "/people") return page("users.read", <People session={session} />);
  if (path === "/security-log") return page("security_log.read", <SecurityLog />);
  if (path === "/account") return <Account session={session} />;
  if (path === "/rules") return page("rules.read", <Rules session={session} />);
  if (path === "/rules/new") return page("rules.write", <RuleEditor id={null} session={session} />);
  const rule = /^\/rules\/([^/]+)$/.exec(path);
  if (rule) return page("rules.read", <RuleEditor id={decodeURIComponent(rule[1])} session={session} />);
  if (path === "/channels") return page("channels.read", <Channels session={session} />);
  if (path === "/settings") return page("settings.read", <SettingsPage />);
  if (path === "/about") return page("settings.read", <About />);
  return (
    <>
      <h1>Not found</h1>
      <p>There is no page at {path}.</p>
    </>
  );
}

function Shell({ session, onSignOut, path }: { session: Session; onSignOut: () => void; path: string }) {
  const [menu, setMenu] = useState(false);
  useEffect(() => setMenu(false), [path]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/" onClick={onLinkClick}>
          torii
        </a>
        <button type="button" class="menu-toggle secondary" aria-expanded={menu} aria-controls="nav" onClick={() => setMenu(!menu)}>
          Menu
        </button>
        <nav id="nav" class={menu ? "open" : ""} aria-label="Main">
          {kNav.filter(([, , permission]) => may(session, permission)).map(([href, label]) => {
            const current = href === "/" ? path === "/" : path.startsWith(href);
            return (
              <a key={href} href={href} onClick={onLinkClick} aria-current={current ? "page" : undefined}>
                {label}
              </a>
            );
          })}
          <a class="who" data-testid="who" href="/account" onClick={onLinkClick} aria-current={path === "/account" ? "page" : undefined}>
            {session.user.username} <span class="muted">({session.user.role})</span>
          </a>
          <button type="button" class="secondary" onClick={onSignOut}>
            Sign out
          </button>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        <View path={path} session={session} />
      </main>
      <StepUpDialog />
    </>
  );
}

let returnTo = "/";

function App() {
  const path = usePath();
  // undefined: asking the server; null: nobody is signed in.
  const [session, setSession] = useState<Session | null | undefined>(undefined);

  useEffect(() => {
    if (path === "/setup") {
      setSession((s) => (s === undefined ? null : s));
      return;
    }
    get<Session>("/session")
      .then((s) => {
        setCsrfToken(s.csrf_token);
        setSession(s);
      })
      .catch(() => setSession(null));
    // Only at load: afterwards the pages change the session themselves.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    // Any answer saying the session is gone (timed out, ended elsewhere) leads to sign-in.
    const gone = () => setSession((s) => (s === undefined ? s : null));
    addEventListener("torii:signed-out", gone);
    return () => removeEventListener("torii:signed-out", gone);
  }, []);

  // Signed out, every page leads to sign-in, and back to the page asked for after it.
  useEffect(() => {
    if (session !== null || path === "/sign-in" || path === "/setup" || path === "/password") return;
    returnTo = path;
    navigate("/sign-in", true);
  }, [session, path]);

  const signedIn = async (s: Session) => {
    setCsrfToken(s.csrf_token);
    // The session answer names what the person may do (the sign-in answers do not).
    const full = await get<Session>("/session").catch(() => s);
    setCsrfToken(full.csrf_token);
    setSession(full);
    if (path === "/setup" || path === "/sign-in") navigate(returnTo, true);
    returnTo = "/";
  };
  const signOut = async () => {
    try {
      await del("/session");
    } catch {
      /* signed out already */
    }
    setCsrfToken("");
    returnTo = "/";
    navigate("/sign-in", true);
    setSession(null);
  };

  if (path === "/setup" && (!session || session.stage !== "full")) return <Frame><Setup onSession={signedIn} /></Frame>;
  if (path === "/password") return <Frame><SetPassword /></Frame>;
  if (session === undefined) return <Frame><Loading what="the console" /></Frame>;
  if (session === null) return <Frame><SignIn stage="password" onSession={signedIn} /></Frame>;
  if (session.stage === "second-factor") return <Frame><SignIn stage="second-factor" onSession={signedIn} /></Frame>;
  if (session.stage === "enrol") {
    return <Frame><EnrolTotp title="Your organisation requires a second factor" onDone={signedIn} /></Frame>;
  }
  if (path === "/sign-in" || path === "/setup") {
    navigate("/", true);
    return null;
  }
  return <Shell session={session} onSignOut={signOut} path={path} />;
}

function Frame({ children }: { children: ComponentChildren }) {
  return (
    <main id="main" class="frame">
      <p class="brand">torii</p>
      {children}
    </main>
  );
}

render(<App />, document.getElementById("app")!);
