"use client";
/**
 * Asks for a token once any call answers 401: the API token for reading, or the admin token when
 * an operator action was refused (one field holds either: the admin token also reads). It stays
 * in sessionStorage only and is sent as `Authorization: Bearer …` (and as `access_token` on the
 * event stream). The optional name is sent with changes as `X-Blacksmith-Actor`.
 */
import { useQueryClient } from "@tanstack/react-query";
import { KeyRound } from "lucide-react";
import { type FormEvent, useEffect, useState, useSyncExternalStore } from "react";
import { Button } from "@/components/ui/button";
import { Dialog, DialogContent, DialogDescription, DialogTitle } from "@/components/ui/dialog";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import {
  dismissAuthRequired,
  getActor,
  getAuthNeed,
  getToken,
  isAuthRequired,
  setActor,
  setToken,
  subscribe,
} from "@/lib/api/token";

export function ApiTokenDialog() {
  const required = useSyncExternalStore(subscribe, isAuthRequired, () => false);
  const need = useSyncExternalStore(subscribe, getAuthNeed, () => "read" as const);
  const hadToken = useSyncExternalStore(
    subscribe,
    () => getToken() !== null,
    () => false,
  );
  const queryClient = useQueryClient();
  const [value, setValue] = useState("");
  const [actor, setActorValue] = useState("");
  const admin = need === "admin";

  useEffect(() => {
    if (required) setActorValue(getActor() ?? "");
  }, [required]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!value.trim()) return;
    setActor(actor);
    setToken(value);
    setValue("");
    void queryClient.invalidateQueries();
  };

  let description: string;
  if (admin) {
    description = hadToken
      ? "Operator actions need the admin token (server.admin_token); the saved token is not it. Enter the admin token, then repeat the action."
      : "Operator actions need the admin token (server.admin_token). Enter it, then repeat the action. It is kept for this browser tab only (sessionStorage).";
  } else {
    description = hadToken
      ? "The API refused the saved token. Enter a valid one."
      : "This Blacksmith Mini API asks for a token. It is kept for this browser tab only (sessionStorage).";
  }

  return (
    <Dialog
      open={required}
      onOpenChange={(open) => {
        // Reading cannot go on without a token; a refused change can be given up.
        if (!open && admin) dismissAuthRequired();
      }}
    >
      <DialogContent
        onEscapeKeyDown={(e) => (admin ? undefined : e.preventDefault())}
        onInteractOutside={(e) => e.preventDefault()}
      >
        <form onSubmit={submit} className="flex flex-col gap-4" aria-label="API token">
          <div className="flex flex-col gap-1">
            <DialogTitle className="flex items-center gap-2">
              <KeyRound className="size-4" />{" "}
              {admin ? "Admin token required" : "API token required"}
            </DialogTitle>
            <DialogDescription>{description}</DialogDescription>
          </div>
          <div className="flex flex-col gap-1">
            <Label htmlFor="api-token">Token</Label>
            <Input
              id="api-token"
              type="password"
              autoComplete="off"
              autoFocus
              value={value}
              onChange={(e) => setValue(e.target.value)}
            />
          </div>
          <div className="flex flex-col gap-1">
            <Label htmlFor="api-actor">Your name (optional, recorded with your actions)</Label>
            <Input
              id="api-actor"
              autoComplete="nickname"
              maxLength={64}
              value={actor}
              onChange={(e) => setActorValue(e.target.value)}
            />
          </div>
          <div className="flex justify-end gap-2">
            {admin ? (
              <Button type="button" variant="ghost" onClick={dismissAuthRequired}>
                Cancel
              </Button>
            ) : null}
            <Button type="submit" disabled={!value.trim()}>
              Save token
            </Button>
          </div>
        </form>
      </DialogContent>
    </Dialog>
  );
}
