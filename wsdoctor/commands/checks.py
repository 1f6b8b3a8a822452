"""``wsdoctor checks``: list the installed checks (built-ins and plugins alike)."""

from __future__ import annotations

import argparse

from wsdoctor.commands import SUMMARIES
from wsdoctor.commands.common import TYPE_CHECKING, ExitCode

if TYPE_CHECKING:
    from typing import Any

__all__ = ["add_parser", "handle"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("checks", help=SUMMARIES["checks"])
    p.set_defaults(handler=handle)


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
