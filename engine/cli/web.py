"""``breakglass serve``: the live, read-only web page over the run store."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import app, store
from engine.errors import BreakglassError


@app.command()
def serve(
    listen: Annotated[str, typer.Option("--listen", metavar="HOST:PORT",
                                        help="Where to listen (port 0: any free one).")] = "127.0.0.1:8470",
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", metavar="FILE", help="A file holding the token readers must show (owner-only).")] = None,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", metavar="NAME", help="Another name the page is reached by, e.g. behind a proxy (repeatable).",
    )] = None,
) -> None:
    """A live, read-only web page over the runs: open and recent runs, one run as it happens, its report.

    Listens on loopback by default. Any other address needs --token-file (readers then give the token), or
    stay on loopback behind a reverse proxy that authenticates. Exit 2 when the address or token is refused.

    \b
    Example:
      breakglass serve --listen 127.0.0.1:8470
    """
    try:
        from engine.web.server import serve as run_server
    except ImportError as exc:
        raise BreakglassError(f"breakglass serve needs the web extra ({exc.name} is missing): "
                              "pip install 'breakglass[web]'") from None
    from engine.web.access import parse_listen

    def announce(url: str) -> None:
        typer.echo(f"serving runs read-only on {url} (Ctrl-C stops)", err=True)

    run_server(store(), parse_listen(listen), token_file, tuple(allow_host or ()), announce)
