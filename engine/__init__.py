"""The runbook engine: loading and checking runbooks, running steps behind gates, the audit log, the stores,
drills, reports and the CLI. Internal: the supported API is the ``breakglass`` package."""
