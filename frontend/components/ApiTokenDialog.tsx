"use client";
/**
 * Asks for the API token once any call answers 401. The token stays in sessionStorage only and
 * is sent as `Authorization: Bearer …` (and as `access_token` on the event stream).
 */
import { useQueryClient } from "@tanstack/react-query";
import { KeyRound } from "lucide-react";
import { type FormEvent, useState, useSyncExternalStore } from "react";
import { Button } from "@/components/ui/button";
import { Dialog, DialogContent, DialogDescription, DialogTitle } from "@/components/ui/dialog";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { getToken, isAuthRequired, setToken, subscribe } from "@/lib/api/token";

export function ApiTokenDialog() {
  const required = useSyncExternalStore(subscribe, isAuthRequired, () => false);
  const hadToken = useSyncExternalStore(
    subscribe,
    () => getToken() !== null,
    () => false,
  );
  const queryClient = useQueryClient();
  const [value, setValue] = useState("");

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!value.trim()) return;
    setToken(value);
    setValue("");
    void queryClient.invalidateQueries();
  };

  return (
    <Dialog open={required}>
      <DialogContent
        onEscapeKeyDown={(e) => e.preventDefault()}
        onInteractOutside={(e) => e.preventDefault()}
      >
        <form onSubmit={submit} className="flex flex-col gap-4" aria-label="API token">
          <div className="flex flex-col gap-1">
            <DialogTitle className="flex items-center gap-2">
              <KeyRound className="size-4" /> API token required
            </DialogTitle>
            <DialogDescription>
              {hadToken
                ? "The API refused the saved token. Enter a valid one."
                : "This Blacksmith Mini API asks for a token. It is kept for this browser tab only (sessionStorage)."}
            </DialogDescription>
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
          <div className="flex justify-end">
            <Button type="submit" disabled={!value.trim()}>
              Save token
            </Button>
          </div>
        </form>
      </DialogContent>
    </Dialog>
  );
}
