/**
 * The optional API token (a read token or the admin token: one field holds either) and the
 * optional operator name sent as `X-Blacksmith-Actor`. Both are kept in sessionStorage only (gone
 * when the tab closes) and announced to subscribers, so the data hook can reconnect its event
 * stream and the token form can show itself when a call answers 401.
 */
const STORAGE_KEY = "blacksmith-mini.api-token";
const ACTOR_KEY = "blacksmith-mini.actor";

type Listener = () => void;

/** What a 401 refused: reading (needs the API or admin token) or a change (needs the admin one). */
export type AuthNeed = "read" | "admin";

const listeners = new Set<Listener>();
let authRequired = false;
let authNeed: AuthNeed = "read";
let memoryToken: string | null = null;
let memoryActor: string | null = null;

function storage(): Storage | null {
  try {
    return typeof window === "undefined" ? null : window.sessionStorage;
  } catch {
    return null;
  }
}

function emit(): void {
  for (const listener of listeners) listener();
}

export function getToken(): string | null {
  const store = storage();
  return store ? store.getItem(STORAGE_KEY) : memoryToken;
}

export function setToken(token: string | null): void {
  const value = token?.trim() || null;
  const store = storage();
  if (store) {
    if (value) store.setItem(STORAGE_KEY, value);
    else store.removeItem(STORAGE_KEY);
  } else {
    memoryToken = value;
  }
  authRequired = false;
  emit();
}

export function isAuthRequired(): boolean {
  return authRequired;
}

/** Whether the last 401 was for reading or for a change (operator action). */
export function getAuthNeed(): AuthNeed {
  return authNeed;
}

/** Called by the fetch client when the API answers 401. */
export function markAuthRequired(need: AuthNeed = "read"): void {
  // Reading refused outranks a refused change: the form must not become dismissable.
  const next: AuthNeed = authRequired && authNeed === "read" ? "read" : need;
  if (!authRequired || authNeed !== next) {
    authRequired = true;
    authNeed = next;
    emit();
  }
}

/** Close the token form without changing the token (only offered for a refused change). */
export function dismissAuthRequired(): void {
  if (authRequired) {
    authRequired = false;
    emit();
  }
}

/** Keeps what a header can carry: printable Latin-1, at most 64 characters (the server's cap). */
export function cleanActor(name: string): string {
  return Array.from(name)
    .filter((ch) => {
      const code = ch.codePointAt(0) ?? 0;
      return (code >= 0x20 && code < 0x7f) || (code >= 0xa0 && code <= 0xff);
    })
    .join("")
    .trim()
    .slice(0, 64);
}

/** The operator's name, sent as `X-Blacksmith-Actor` with every change. */
export function getActor(): string | null {
  const store = storage();
  return store ? store.getItem(ACTOR_KEY) : memoryActor;
}

export function setActor(name: string | null): void {
  const value = cleanActor(name ?? "") || null;
  const store = storage();
  if (store) {
    if (value) store.setItem(ACTOR_KEY, value);
    else store.removeItem(ACTOR_KEY);
  } else {
    memoryActor = value;
  }
  emit();
}

export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** Test helper: forget the token, the name and the 401 flag. */
export function resetTokenState(): void {
  authRequired = false;
  authNeed = "read";
  memoryToken = null;
  memoryActor = null;
  storage()?.removeItem(STORAGE_KEY);
  storage()?.removeItem(ACTOR_KEY);
  emit();
}
