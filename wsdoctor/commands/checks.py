"""``wsdoctor checks``: list the installed checks (built-ins and plugins alike)."""

from __future__ import annotations

import argparse

from wsdoctor.commands.common import ExitCode

__all__ = ["handle"]


def handle(args: argparse.Namespace) -> int:
    from wsdoctor.registry import load_checks, order_checks

    loaded = load_checks()
    for check in order_checks(loaded.checks.values()):
        needs = f"  (requires {', '.join(check.requires)})" if check.requires else ""
        slow = "  [slow]" if check.slow else ""
        print(f"{check.id:20} {check.title}{needs}{slow}")
    for name, reason in sorted(loaded.broken.items()):
        print(f"{'plugin.' + name:20} could not be loaded: {reason}")
    return ExitCode.OK
