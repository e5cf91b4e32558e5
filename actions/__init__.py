"""The actions runbook steps call: one interface (base.py), a registry of built-ins and plugins (registry.py),
and the protocol clients they share (clients/)."""
