"""After downtime, ask GitHub to redeliver the webhook deliveries that failed meanwhile.

GitHub does not retry failed deliveries; an App can list them (``GET /app/hook/deliveries``,
newest first, cursor pagination) and redeliver each (``POST .../{id}/attempts``) for three
days. We redeliver failed ones since our last received delivery whose GUID we never got
and that no later attempt delivered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence

from blacksmith_mini.github import auth, parse

log = logging.getLogger(__name__)
WINDOW_SECONDS = 3 * 86400
NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


async def redeliver_failed(
    app: auth.AppInstallation,
    *,
    known: Callable[[Sequence[str]], Awaitable[set[str]]],
    since: float,
    now: float,
    max_pages: int = 50,
) -> list[str]:
    """Redeliver what failed since ``since``; return the GUIDs asked for again."""
    cutoff = max(since, now - WINDOW_SECONDS)
    failed: dict[str, int] = {}
    delivered: set[str] = set()
    path: str | None = "/app/hook/deliveries?per_page=100"
    pages = 0
    while path is not None and pages < max_pages:
        pages += 1
        page, headers = await app.app_request_with_headers("GET", path)
        older = False
        for item in page:
            at = parse.epoch(str(item.get("delivered_at"))) or 0.0
            if at < cutoff:
                older = True
                break
            guid = str(item["guid"])
            if 200 <= int(item.get("status_code") or 0) < 300:
                delivered.add(guid)
            else:
                failed.setdefault(guid, int(item["id"]))
        found = NEXT_LINK.search(headers.get("link", ""))
        path = None if older or found is None else _relative(found.group(1), app)
    missing = {guid: delivery for guid, delivery in failed.items() if guid not in delivered}
    if not missing:
        return []
    already = await known(list(missing))
    asked = []
    for guid, delivery in missing.items():
        if guid in already:
            continue
        await app.app_request("POST", f"/app/hook/deliveries/{delivery}/attempts")
        asked.append(guid)
    if asked:
        log.info("asked GitHub to redeliver %d failed webhook deliveries", len(asked))
    return asked


def _relative(url: str, app: auth.AppInstallation) -> str:
    return url.removeprefix(app.api_url)
