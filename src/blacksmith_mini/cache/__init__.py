"""The co-located GitHub Actions cache: both protocols ``@actions/cache`` speaks, on local disk.

- ``tokens``: per-VM cache tokens and signed blob URLs (HMAC-SHA256), and their redaction.
- ``scope``: which branch scopes a job reads and writes, and GitHub's lookup rule (pure).
- ``index`` / ``parts`` / ``store``: the on-disk store (SQLite index, streamed part files,
  atomic commit, caps with LRU eviction, SHA-256 verification, recovery on re-open).
- ``twirp`` (v2 ``CacheService``), ``v1`` (``_apis/artifactcache``), ``blob`` (the Azure Blob
  subset the Azure SDK sends), ``admin`` (list, delete, metrics): the HTTP surface.
- ``service``: the configuration, the shared state and the app factory; ``serve``: run it alone.

Nothing here imports the rest of Blacksmith Mini: the control plane and the agent mount it.
"""
