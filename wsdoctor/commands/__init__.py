"""The subcommands of ``wsdoctor``: one module each, named as in :data:`SUMMARIES`, with

- ``handle(args) -> int``: the command, on the parsed arguments (its exit code);
- ``DESCRIPTION`` (optional): the paragraph ``wsdoctor NAME --help`` shows under the usage line;
- ``add_arguments(parser)`` (optional): the command's arguments, on the parser
  :func:`wsdoctor.cli.build_parser` made for it (named, with its summary as help, like every other).

Options several commands take are declared once, in :data:`wsdoctor.commands.common.SHARED_OPTIONS`
and :func:`wsdoctor.commands.output.add_output_arguments`.

:data:`SUMMARIES` holds the line ``wsdoctor --help`` lists for each subcommand, in help order. The
top-level help is built from it alone, importing no subcommand module; ``wsdoctor NAME ...`` imports
``wsdoctor.commands.NAME`` and builds that one parser in full (:func:`wsdoctor.cli.build_parser`).
"""

__all__ = ["SUMMARIES"]

SUMMARIES = {
    "run": "diagnose a WebSocket endpoint (default: Deepgram's)",
    "mock": "serve the built-in Deepgram-compatible mock",
    "checks": "list the available checks",
    "render": "re-render a saved JSON report (no network)",
    "explain": "explain a pasted error message or a log: likely causes, fixes, checks to run",
    "serve": "Prometheus exporter: GET /probe?target=NAME&profile=P diagnoses a configured target",
    "load": "N concurrent real-time streams against an endpoint you own",
    "watch": "relay your app's Deepgram connections and judge them frame by frame",
}
