/**
 * The optional API token. Kept in sessionStorage only (gone when the tab closes) and announced to
 * subscribers, so the data hook can reconnect its event stream and the token form can show itself
 * when a call answers 401.
 */
const STORAGE_KEY = "blacksmith-mini.api-token";

type Listener = () => void;

const listeners = new Set<Listener>();
let authRequired = false;
let memoryToken: string | null = null;

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

/** Called by the fetch client when the API answers 401. */
export function markAuthRequired(): void {
  if (!authRequired) {
    authRequired = true;
    emit();
  }
}

export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** Test helper: forget the token and the 401 flag. */
export function resetTokenState(): void {
  authRequired = false;
  memoryToken = null;
  storage()?.removeItem(STORAGE_KEY);
  emit();
}
