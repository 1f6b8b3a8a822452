"""``wsdoctor render``: re-render a saved JSON report without any network access."""

from __future__ import annotations

import argparse
from typing import Any

from wsdoctor.commands.common import ExitCode
from wsdoctor.commands.output import add_output_arguments, emit, prepare_outputs
from wsdoctor.errors import UsageError

__all__ = ["add_parser", "handle"]


def add_parser(sub: Any) -> None:
    render = sub.add_parser("render", help="re-render a saved JSON report (no network)")
    render.add_argument("report", help="a JSON report written by 'wsdoctor run --json'")
    add_output_arguments(render)
    render.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import json

    from wsdoctor.model import Report

    prepare_outputs(args)
    try:
        with open(args.report, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read {args.report!r}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{args.report!r} is not valid JSON: {exc}") from None
    report = Report.from_dict(data)
    emit(report, args)
    return ExitCode.OK  # rendering worked; the verdict is in the output, not the exit code
