"""HTTP helpers of the simulated GitHub: GitHub's error body and ``link`` pagination."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

DOCS = "https://docs.github.com/rest"


def error(status: int, message: str, *, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"message": message, "documentation_url": DOCS, "status": str(status)},
        status_code=status,
        headers=headers,
    )


def page(request: Request, items: list[Any], *, key: str) -> Response:
    """``{total_count, key: [...]}`` with GitHub's ``link`` header (``per_page`` max 100)."""
    try:
        per_page = min(100, max(1, int(request.query_params.get("per_page", "30"))))
        number = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return error(422, "Invalid request.\n\nper_page and page must be integers.")
    pages = max(1, math.ceil(len(items) / per_page))
    chunk = items[(number - 1) * per_page : number * per_page]
    headers = {}
    links = []
    base = request.url.remove_query_params("page")
    if number < pages:
        links.append(f'<{base.include_query_params(page=number + 1)}>; rel="next"')
        links.append(f'<{base.include_query_params(page=pages)}>; rel="last"')
    if number > 1:
        links.append(f'<{base.include_query_params(page=number - 1)}>; rel="prev"')
        links.append(f'<{base.include_query_params(page=1)}>; rel="first"')
    if links:
        headers["link"] = ", ".join(links)
    return JSONResponse({"total_count": len(items), key: chunk}, headers=headers)
