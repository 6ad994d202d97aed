"""Route table, API version prefix handling and error mapping, as moby's api/server does it."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from dockyard.api.http import Request, Response, json_response
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.api")

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"

_VERSION_PREFIX = re.compile(r"^/v([0-9.]+)(/.*)$")
_PARAM = re.compile(r"\{(\w+)(?::([^}]+))?\}")

Handler = Callable[[Request], Any]


def _vtuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (0,)


class Router:
    """Maps (method, path) to handlers; every route answers bare and under /vX.Y/."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        def repl(m: re.Match[str]) -> str:
            return f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})"

        regex = re.compile("^" + _PARAM.sub(repl, pattern) + "$")
        self._routes.append((method, regex, handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, pattern, fn)
            return fn

        return deco

    def dispatch(self, request: Request) -> Any:
        path = request.path
        version = API_VERSION
        m = _VERSION_PREFIX.match(path)
        if m:
            version, path = m.group(1), m.group(2)
            if _vtuple(version) < _vtuple(MIN_API_VERSION):
                return json_response(
                    {
                        "message": f"client version {version} is too old. Minimum supported API version is "
                        f"{MIN_API_VERSION}, please upgrade your client to a newer version"
                    },
                    400,
                )
            if _vtuple(version) > _vtuple(API_VERSION):
                return json_response(
                    {"message": f"client version {version} is too new. Maximum supported API version is {API_VERSION}"},
                    400,
                )
        request.api_version = version
        method = "GET" if request.method == "HEAD" else request.method
        found_path = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if not match:
                continue
            found_path = True
            if route_method != method:
                continue
            request.params = match.groupdict()
            try:
                return handler(request)
            except DockyardError as exc:
                if exc.status == 304:
                    return Response(304)
                return json_response({"message": exc.message}, exc.status)
            except Exception as exc:  # a bug: report it as docker does (500), keep the daemon up
                log.exception("%s %s failed", request.method, request.path)
                return json_response({"message": f"{type(exc).__name__}: {exc}"}, 500)
        if found_path:
            return json_response({"message": "method not allowed"}, 405)
        return json_response({"message": "page not found"}, 404)
