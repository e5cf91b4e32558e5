"""Print domains per second and peak memory of domain.expiry_audit over a local RDAP fleet.

    python bench/bench_expiry_audit.py [--domains 1000] [--concurrency 32] [--per-server 8] [--delay 0.002]

Talks only to a server on 127.0.0.1 (tests/lab/rdap.py). Peak memory is measured twice: tracemalloc's peak
of Python allocations during the audit, and the process's maximum RSS (resource.getrusage).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actions.base import ActionContext  # noqa: E402
from actions.domain_audit import DomainExpiryAudit, ExpiryAuditParams  # noqa: E402
from tests.lab.rdap import RdapServer, fleet  # noqa: E402

NOW = datetime(2024, 11, 20, 12, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-server", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.002, help="server think time per answer, seconds")
    args = parser.parse_args()

    elapsed, counts, peak_concurrency, _ = _audit(args, trace=False)
    _, _, _, traced = _audit(args, trace=True)  # a second pass: tracemalloc slows Python down 2-3x
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"domains          {counts['total']}")
    print(f"seconds          {elapsed:.2f}")
    print(f"domains/second   {counts['total'] / elapsed:.0f}")
    print(f"peak traced MiB  {traced / 2**20:.1f}  (tracemalloc pass; includes the lab server's threads)")
    print(f"max RSS MiB      {rss_mb:.1f}")
    print(f"server peak concurrency {peak_concurrency} (limit {args.per_server} per server)")
    print(f"counts           {counts}")


def _audit(args: argparse.Namespace, trace: bool) -> tuple[float, dict[str, int], int, int]:
    server = RdapServer().start()
    server.dynamic = fleet(NOW, delay=args.delay)
    params = ExpiryAuditParams(
        domains=[f"d{i}.com" for i in range(1, args.domains + 1)],
        rdap_url=server.base + "/rdap/",
        concurrency=args.concurrency,
        per_server=args.per_server,
    )
    try:
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        result = DomainExpiryAudit().run(params, ActionContext(settings={"now": NOW}))
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        tracemalloc.stop()
    finally:
        server.stop()
    return elapsed, result.output["counts"], server.peak, peak


if __name__ == "__main__":
    main()
