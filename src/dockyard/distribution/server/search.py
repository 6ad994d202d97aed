"""`GET /v1/search`: the registry v1 search shape `docker search` (through the daemon) expects."""

from __future__ import annotations

from typing import Any

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


def search(names: list[str], query: str, limit: int | None) -> dict[str, Any]:
    """Repositories whose name contains `query` (case-insensitive), exact and prefix matches first."""
    term = query.strip().lower()
    limit = DEFAULT_LIMIT if not limit or limit < 1 else min(limit, MAX_LIMIT)
    hits = [n for n in names if term in n]
    hits.sort(key=lambda n: (n != term, not n.rsplit("/", 1)[-1].startswith(term), n))
    results = [
        {"name": n, "description": "", "star_count": 0, "is_official": False, "is_automated": False}
        for n in hits[:limit]
    ]
    return {
        "query": query,
        "num_results": len(results),
        "page_size": limit,
        "page": 1,
        "num_pages": 1,
        "results": results,
    }
