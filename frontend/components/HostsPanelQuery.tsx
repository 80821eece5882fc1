/**
 * The hosts panel's data: `GET /api/hosts` as a TanStack query refreshed every 3 s, the operator
 * actions on one host (`POST /api/hosts/{name}/cordon|drain|uncordon`, admin) and which of them a
 * host offers. The types come from the generated OpenAPI schema.
 */
import { type QueryClient, queryOptions } from "@tanstack/react-query";
import { client, unwrap } from "@/lib/api/client";
import { retryOnce } from "@/lib/api/queries";
import type { components } from "@/lib/api/schema";

export type Host = components["schemas"]["HostOut"];
export type HostList = components["schemas"]["HostList"];
export type HostResources = components["schemas"]["Resources"];
export type HostState = Host["state"];
export type HostAction = "cordon" | "drain" | "uncordon";

export const HOSTS_REFRESH_MS = 3_000;
export const hostsQueryKey = ["hosts"] as const;

export const hostsQueryOptions = () =>
  queryOptions({
    queryKey: hostsQueryKey,
    queryFn: ({ signal }) => unwrap(client.GET("/api/hosts", { signal })),
    retry: retryOnce,
    refetchInterval: HOSTS_REFRESH_MS,
  });

/** Runs one action on a host; answers the host as it is afterwards. */
export function runHostAction(name: string, action: HostAction, reason: string): Promise<Host> {
  const init = { params: { path: { name } }, body: { reason } };
  switch (action) {
    case "cordon":
      return unwrap(client.POST("/api/hosts/{name}/cordon", init));
    case "drain":
      return unwrap(client.POST("/api/hosts/{name}/drain", init));
    case "uncordon":
      return unwrap(client.POST("/api/hosts/{name}/uncordon", init));
  }
}

/** The actions a host offers by its operator state; none for the in-process or a revoked host. */
export function hostActions(
  host: Pick<Host, "in_process" | "state" | "admin_state">,
): HostAction[] {
  if (host.in_process || host.state === "revoked") return [];
  switch (host.admin_state) {
    case "up":
      return ["cordon", "drain"];
    case "cordoned":
      return ["uncordon", "drain"];
    case "draining":
      return ["uncordon"];
  }
}

/** After an action: show the host's answer at once, then fetch the list again. */
export function applyHostChange(queryClient: QueryClient, changed: Host): void {
  queryClient.setQueryData<HostList>(hostsQueryKey, (old) =>
    old
      ? { ...old, hosts: old.hosts.map((host) => (host.name === changed.name ? changed : host)) }
      : old,
  );
  void queryClient.invalidateQueries({ queryKey: hostsQueryKey, exact: true });
}
