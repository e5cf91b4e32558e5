"""The types a runbook input can have. Kept apart from engine.model so validation need not import pydantic."""

from __future__ import annotations

from enum import StrEnum


class InputType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    LIST = "list"
    DOMAIN = "domain"
    HOSTNAME = "hostname"
    HOST = "host"  # a host name or an IP address: what ssh and smtp targets usually are
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    IP = "ip"
    URL = "url"
    EMAIL = "email"
    SECRET = "secret"  # noqa: S105 - the name of a type, not a password
