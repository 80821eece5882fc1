"""GitHub adapter: REST client (gidgethub over httpx2), rate-limit guard, payload parsing."""
