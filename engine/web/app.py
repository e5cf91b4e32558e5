"""The web application: pages over a run store, a server-sent event stream per run, and the access check.

Routes (all GET; nothing here changes a run):

    /                           open and recent runs
    /runs/{id}                  one run, live
    /runs/{id}/events           its records as server-sent events; ``Last-Event-ID`` (or ``?after=``) is
                                the seq of the last record the page has, and only newer ones are sent
    /runs/{id}/report           the post-incident report, as ``breakglass report --format html`` writes it
    /static/{file}              the page's own script and style sheet
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.errors import BreakglassError, RunNotFound
from engine.report import from_store
from engine.store import RunStore
from engine.web.access import COOKIE, Access
from engine.web.follow import Followers, snapshot_of
from engine.web.pages import PAGE_CSP, SECURITY_HEADERS, STATIC, Pages, report_page

KEEPALIVE_SECONDS = 15.0  # a comment line now and then, so proxies and phones keep the stream open
RETRY_MS = 500  # how soon a browser reconnects after the stream drops


def create_app(store: RunStore, access: Access, interval: float | None = None) -> Starlette:
    """The application over ``store``; ``interval`` (seconds) is how often a watched run is polled."""
    pages = Pages()
    followers = Followers(store, pages) if interval is None else Followers(store, pages, interval)

    async def index(request: Request) -> Response:
        runs = await asyncio.to_thread(store.list_runs)
        return _html(pages.index(runs))

    async def run_page(request: Request) -> Response:
        run_id = await _resolve(store, request)
        report = await asyncio.to_thread(from_store, store, run_id)
        snapshot = snapshot_of(report, 0, pages, {})
        return _html(pages.run(report, snapshot.rows, snapshot.panels))

    async def report(request: Request) -> Response:
        run_id = await _resolve(store, request)
        html, csp = await asyncio.to_thread(lambda: report_page(from_store(store, run_id)))
        return _html(html, csp)

    async def events(request: Request) -> Response:
        run_id = await _resolve(store, request)
        after = _seq(request.headers.get("last-event-id") or request.query_params.get("after"))
        return StreamingResponse(_stream(followers, run_id, after), media_type="text/event-stream",
                                 headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"})

    async def not_found(request: Request, exc: Exception) -> Response:
        return _html(pages.problem("Not found", str(exc) if isinstance(exc, RunNotFound) else "No such page."),
                     status=404)

    async def unreadable(request: Request, exc: Exception) -> Response:
        return _html(pages.problem("Cannot read this run", str(exc)), status=500)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/runs/{run_id}", run_page),
            Route("/runs/{run_id}/events", events),
            Route("/runs/{run_id}/report", report),
            Route("/favicon.ico", lambda request: Response(status_code=204)),  # browsers ask whatever the page says
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={RunNotFound: not_found, 404: not_found, BreakglassError: unreadable},
        middleware=[Middleware(Guard, access=access, pages=pages)],
    )
    app.state.followers = followers
    return app


class Guard:
    """Every request passes here first: refused unless its Host and token are right; every response leaves
    with the security headers (a CSP of its own, as the report page has, is kept)."""

    def __init__(self, app: ASGIApp, access: Access, pages: Pages) -> None:
        self.app, self.access, self.pages = app, access, pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = _refusal(self.access, Request(scope), self.pages)
        if refused is not None:
            await refused(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP}.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _refusal(access: Access, request: Request, pages: Pages) -> Response | None:
    """Why this request is not served (a Host this server is not, no token), or None to serve it."""
    if request.method not in ("GET", "HEAD"):
        return Response("read-only: this server changes nothing\n", status_code=405, headers={"Allow": "GET, HEAD"})
    host = request.headers.get("host", "")
    if host not in access.hosts:
        # A page on another site whose name was pointed at this address (DNS rebinding) is refused here.
        return Response(f"this server does not answer for host {host!r}\n", status_code=421)
    if access.token is None:
        return None
    given = request.query_params.get("token")
    if given is not None and access.allows(given):
        # Trade the token in the address for a cookie at once, so it does not stay in history or get copied.
        path = request.url.path
        query = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items() if k != "token")
        target = path + (f"?{query}" if query else "")
        redirect = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        redirect.set_cookie(COOKIE, given, httponly=True, samesite="strict", path="/")
        return redirect
    auth = request.headers.get("authorization", "")
    bearer = auth[7:] if auth.lower().startswith("bearer ") else None
    if access.allows(bearer) or access.allows(request.cookies.get(COOKIE)):
        return None
    page = pages.problem("Token needed", "This server shows runs only to people with its token: open the address "
                                         "you were given with ?token=…, or send Authorization: Bearer.")
    return _html(page, status=401, headers={"WWW-Authenticate": 'Bearer realm="breakglass"'})


async def _stream(followers: Followers, run_id: str, after: int) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    async with followers.watch(run_id) as follower:
        version = -1
        while True:
            snapshot = await follower.next(version, KEEPALIVE_SECONDS)
            if snapshot is None:
                yield ": still here\n\n"
                continue
            version = snapshot.version
            seqs, events = snapshot.events_after(after)
            if seqs:
                after = seqs[-1]
            # One write per change, whatever the number of records: fewer wake-ups for the server and the reader.
            yield "".join(events) + snapshot.state_event


async def _resolve(store: RunStore, request: Request) -> str:
    return await asyncio.to_thread(store.resolve, str(request.path_params["run_id"]))


def _seq(text: str | None) -> int:
    return int(text) if text and text.isdigit() and len(text) < 19 else 0


def _html(body: str, csp: str = PAGE_CSP, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status,
                        headers={**SECURITY_HEADERS, "Content-Security-Policy": csp, **(headers or {})})
