"""The protocols every action speaks, each in one place: the client layer between actions and the network.

- ``address``: "host", "host:port", "[v6]:port" → ``Address``; one parser for DNS, SMTP and WHOIS servers.
- ``fanout``: the one way a step runs concurrent work (a coroutine from synchronous code, a bounded gather).
- ``dns``: queries with timeouts, retries and TCP fallback; a stub ``Resolver`` over the ``nameservers``
  argument that every DNS-reading action takes.

Nothing here imports dnspython, httpx or paramiko at module import: listing actions imports action modules,
and those import their clients.
"""
