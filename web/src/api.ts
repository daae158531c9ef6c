// The console's only way to the server: the REST API under /api/v1 (docs/openapi.yaml).
// The session travels in its HttpOnly cookie; state changes send the session's CSRF token.
// Nothing is kept in browser storage: the token lives in this module's memory only.

export interface FieldProblem {
  field: string;
  code: string;
  message: string;
}

export interface Problem {
  status: number;
  code: string;
  title: string;
  errors?: FieldProblem[];
  retry_after_seconds?: number;
}

export class ApiError extends Error {
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(problem.title);
    this.problem = problem;
  }
  get code(): string {
    return this.problem.code;
  }
  get status(): number {
    return this.problem.status;
  }
  // The message for one field of the request body, when the server named that field.
  field(name: string): string | undefined {
    return this.problem.errors?.find((e) => e.field === name)?.message;
  }
}

export interface User {
  id: string;
  username: string;
  email: string;
  role: string;
  organisation: string;
  second_factor: boolean;
}

export type Stage = "second-factor" | "enrol" | "full";

export interface Session {
  stage: Stage;
  csrf_token: string;
  user: User;
  recovery_codes?: string[];
  permissions?: string[]; // GET /session only
}

export function may(session: Session | null | undefined, permission: string): boolean {
  return !!session?.permissions?.includes(permission);
}

export interface Device {
  id: string;
  name: string;
  organisation: string;
  profile: string;
  segment: string;
  tags: string[];
  status: string;
  created_at: string;
  last_seen_at: string | null;
  connected?: boolean;
  disabled_reason?: string;
}

export interface DeviceDetail extends Device {
  counters?: { messages: number; bytes: number; refusals: number; connects: number };
  certificates?: { serial: string; not_after: string; revoked: boolean; fingerprint_sha256: string }[];
}

export interface Alert {
  id: string;
  organisation: string | null;
  source: "rule" | "device" | "security";
  device: string | null;
  rule: string | null;
  severity: "info" | "warning" | "critical";
  title: string;
  summary: string;
  status: "open" | "acknowledged" | "resolved";
  occurrences: number;
  opened_at: string;
  last_raised_at: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  resolved_at: string | null;
  resolved_by: string | null;
}

export interface Bucket {
  from: string;
  to: string;
  min: number;
  max: number;
  avg: number;
  count: number;
}

let csrfToken = "";

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

// Operations that need a recent proof of identity answer 403 step_up_required: the console
// then asks for the password or a code (stepup.tsx) and sends the request once more.
type StepUp = () => Promise<boolean>;
let stepUp: StepUp | null = null;

export function onStepUpRequired(handler: StepUp | null): void {
  stepUp = handler;
}

export async function call<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError({ status: 0, code: "network", title: "The server cannot be reached; check the connection" });
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const p = data as Partial<Problem> | null;
    // The session ended (timed out, signed out elsewhere): the console goes back to sign-in.
    if (response.status === 401 && p?.code === "unauthenticated") dispatchEvent(new Event("torii:signed-out"));
    if (response.status === 403 && p?.code === "step_up_required" && !retried && stepUp && (await stepUp())) {
      return call<T>(method, path, body, true);
    }
    throw new ApiError({
      status: response.status,
      code: p?.code ?? `http_${response.status}`,
      title: p?.title ?? `The server answered ${response.status}`,
      errors: p?.errors,
      retry_after_seconds: p?.retry_after_seconds,
    });
  }
  return data as T;
}

export const get = <T>(path: string) => call<T>("GET", path);
export const post = <T>(path: string, body?: unknown) => call<T>("POST", path, body);
export const del = <T>(path: string, body?: unknown) => call<T>("DELETE", path, body);
export const patch = <T>(path: string, body?: unknown) => call<T>("PATCH", path, body);
export const put = <T>(path: string, body?: unknown) => call<T>("PUT", path, body);

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  return e instanceof Error ? e.message : String(e);
}
