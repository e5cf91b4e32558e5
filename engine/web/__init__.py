"""The live incident page (``breakglass serve``): runs in the store, one run as it happens, its report.

Read-only by design: the page never approves, answers or changes anything. Split by noun:

    access.py    where the server may listen and who may read: loopback by default, a token elsewhere
    follow.py    one run followed in its store, each change turned into rows and panels for every watcher
    pages.py     the sandboxed templates (the report's environment) and the page headers (CSP)
    app.py       the Starlette application: routes, the server-sent event stream, the access check
    server.py    the socket and uvicorn

Starlette and uvicorn come with the ``web`` extra (``pip install 'breakglass[web]'``) and are imported only
here, so every other command starts without them.
"""
