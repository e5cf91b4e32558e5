"""The protocols every action speaks, each in one place: the client layer between actions and the network.

- ``address``: "host", "host:port", "[v6]:port" → ``Address``; one parser for DNS, SMTP and WHOIS servers.
- ``fanout``: the one way a step runs concurrent work (a coroutine from synchronous code, a bounded gather).
- ``dns``: queries with timeouts, retries and TCP fallback; a stub ``Resolver`` over the ``nameservers``
  argument that every DNS-reading action takes.
- ``spf``: an RFC 7208 ``check_host()`` over that DNS layer.
- ``rdap``, ``whois``, ``epp_status``: registration data, and the status vocabulary RDAP and EPP share.
- ``http_tls``, ``http_redirect``, ``redact_headers``: how the HTTP actions connect (one transport per set of
  connection settings, shared by every call of the process), what follows a redirect
  to another origin (none of the runbook's headers), and which header and URL parts are credentials.
- ``ssh_session``, ``ssh_hostkeys``, ``ssh_transfer``: one SSH connection with host-key checking and a jump
  host, and verified SFTP copies.
- ``commands``: local commands (``shell.run``), watched by ``reaper``, a small helper process per engine that
  kills every command's process group when the engine dies.

Everything in actions/ outside this package is an action (plus the interface, base.py, and the registry).
Nothing here imports dnspython, httpx or paramiko at module import: listing actions imports action modules,
and those import their clients.
"""
