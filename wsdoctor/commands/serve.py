"""``wsdoctor serve``: a Prometheus exporter (blackbox_exporter style); see ``wsdoctor.exporter``."""

from __future__ import annotations

import argparse

__all__ = ["DESCRIPTION", "add_arguments", "handle"]

DESCRIPTION = (
    "Serve /probe (one diagnosis of a configured target, in the OpenMetrics format, cut at the "
    "scrape timeout Prometheus sends) and /metrics (the exporter's own health). Only targets "
    "listed in the config can be probed; anything else gets 403. SIGHUP reloads the config."
)


def add_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to listen on (default: the config's 'listen', else 127.0.0.1:9115; port 0 picks one)",
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="TOML (or .yaml/.yml) file with targets and profiles "
        "(default: the one target wss://api.deepgram.com/v1/listen with default settings)",
    )


def handle(args: argparse.Namespace) -> int:
    from wsdoctor.exporter import serve

    return serve(args.config, args.listen)
