// Client-side routes over the History API: the server answers every path outside /api/
// with the console's page, which then shows the view for location.pathname.
import { useEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  listeners.forEach((l) => l());
}

export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    listeners.add(update);
    addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      removeEventListener("popstate", update);
    };
  }, []);
  return path;
}

// A plain link that changes the view without reloading the page (and still opens in a new
// tab with a modifier key).
export function onLinkClick(e: MouseEvent): void {
  const a = (e.currentTarget as HTMLAnchorElement | null) ?? null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute("href") ?? "/");
}

// A one-time link's token rides in the fragment (/setup#<token>, /password#<token>), which
// the browser never sends; it is read once and taken out of the address bar at once.
export function takeFragmentToken(path: string): string {
  if (location.hash.length <= 1) return "";
  const token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", path);
  return token;
}
