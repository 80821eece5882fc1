"use client";
/**
 * In-page selection kept in the query string (`?vm=3&job=42`) so a view can be linked or
 * reloaded. No dynamic routes: the static export has a single page.
 */
import { useCallback, useEffect, useState } from "react";

function readParam(name: string): number | null {
  if (typeof window === "undefined") return null;
  const raw = new URLSearchParams(window.location.search).get(name);
  if (raw === null || raw.trim() === "") return null;
  const value = Number(raw);
  return Number.isInteger(value) ? value : null;
}

export function useUrlSelection(name: string): [number | null, (value: number | null) => void] {
  const [value, setValue] = useState<number | null>(null);

  useEffect(() => {
    setValue(readParam(name));
    const onPop = () => setValue(readParam(name));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, [name]);

  const update = useCallback(
    (next: number | null) => {
      setValue(next);
      const url = new URL(window.location.href);
      if (next === null) url.searchParams.delete(name);
      else url.searchParams.set(name, String(next));
      window.history.replaceState(window.history.state, "", url);
    },
    [name],
  );

  return [value, update];
}
