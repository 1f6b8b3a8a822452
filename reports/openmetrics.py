"""The OpenMetrics reporter: one report as a Prometheus scrape (or a node_exporter textfile).

Used twice: ``wsdoctor serve`` answers ``GET /probe`` with it (blackbox_exporter style: Prometheus
schedules, stores and alerts), and ``wsdoctor run --openmetrics PATH`` writes it for node_exporter's
textfile collector from cron or CI. ``render()`` is pure: same report, same text, ending ``# EOF``.

One text for two parsers. Prometheus reads ``/probe`` as OpenMetrics; node_exporter's textfile
collector reads ``*.prom`` files with the older Prometheus text-format parser. So only what both
accept is used: gauges (an OpenMetrics ``info`` type would be "unknown metric type" to the older
parser, hence ``wsdoctor_info`` is a gauge, as ``node_uname_info`` is), ``# UNIT`` and ``# EOF``
(comments to the older parser), ``NaN``. ``promtool check metrics`` accepts the output.

What it exposes (every family has HELP and TYPE lines; all are gauges):

- ``wsdoctor_info{version}`` -- which wsdoctor produced the numbers.
- ``wsdoctor_probe_success`` -- 1 when the verdict is ``healthy`` or ``warnings`` (nothing failed,
  nothing broke, the run was not cut), else 0. ``wsdoctor_probe_interrupted`` is 1 when the run
  was cut by its deadline (``--timeout``, the profile's timeout or the scrape timeout).
- ``wsdoctor_verdict{verdict}`` -- one series per verdict (healthy, warnings, failing, incomplete),
  exactly one of them 1: a state set written as gauges so ``== 1`` selects the current one.
- ``wsdoctor_probe_duration_seconds`` -- wall time of the run.
- ``wsdoctor_check_status{check, status}`` -- one series per check *and* per status (pass, warn,
  fail, skip, error), the current one 1: an alert on ``{status="fail"} == 1`` never sees a series
  vanish when a check recovers. ``wsdoctor_check_duration_seconds{check}`` beside it.
- ``wsdoctor_phase_seconds{phase}`` -- the connection phases, blackbox_exporter's vocabulary made
  ours (the exported ones of :data:`wsdoctor.model.PHASES`, labelled by their public ``label``):
  ``dns`` (resolve_s), ``tcp`` (connect_s), ``tls`` (tls_s), ``upgrade`` (upgrade_s),
  ``first_result`` (first_result_s) and ``close`` (closestream_to_close_s: CloseStream to
  Deepgram's close frame, the close the article is about). **Every phase is always emitted**, as
  blackbox does, so a scrape lines up with the next one; a phase that was not reached (or not
  applicable: TLS on ws://) is ``NaN``, not 0 -- the gap is what locates the break (DESIGN §6),
  and NaN makes every comparison false, so ``wsdoctor_phase_seconds > 1`` never fires on it.
- ``wsdoctor_idle_cutoff_seconds`` -- after how many idle seconds a middlebox cut the connection
  without a close frame; ``NaN`` when nothing cut it (or the idle family did not run), so an alert
  ``< 15`` fires only on a measured cutoff. ``wsdoctor_server_idle_timeout_seconds`` is Deepgram's
  own NET-0001 window as measured (``NaN`` when not measured).
- ``wsdoctor_finding{code, cause, severity} 1`` -- one series per distinct (code, cause, severity)
  of the *warn and fail* findings. INFO findings (facts that are not faults, such as Deepgram's
  documented 10 s idle close on every healthy run) get no series: an alert on "any finding" would
  otherwise fire on every healthy endpoint; their numbers are in the gauges above.
- ``wsdoctor_primary_cause{cause, code} 1`` -- present only when the report has a primary cause.

Labels. Values are redacted (:class:`wsdoctor.redact.Redactor`'s structural net: a label is
scraped, stored and shown by every dashboard, so no credential may ride in one -- whatever the
report or the exporter's config put there), then sanitized (:func:`wsdoctor.sanitize.printable`: no
control characters, bounded; redaction comes first, so a cut never leaves half a secret) and
escaped as the OpenMetrics text format requires (backslash, double quote, newline). Label
*cardinality* is bounded by construction: check ids, finding codes, cause ids, statuses, phases
and verdicts are fixed vocabularies (third-party plugins add a few, never per-run values), and no
free text -- messages, summaries, headers, close reasons -- ever becomes a label. The one
per-deployment label is ``target``: the exporter passes the config's target *name*; otherwise it
is the report's display URL, which ``Target.parse`` has already stripped of credentials and
credential query parameters (and which is redacted again here, as every label is).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import ClassVar

from wsdoctor.model import CHECK_STATUSES, SUCCESS_VERDICTS, VERDICTS, Report, Status
from wsdoctor.model import PHASES as MODEL_PHASES
from wsdoctor.redact import Redactor
from wsdoctor.sanitize import printable

__all__ = ["CONTENT_TYPE", "PHASES", "VERDICTS", "OpenMetricsReporter", "escape_label_value", "format_value"]

#: The Content-Type of an OpenMetrics 1.0 exposition (what ``/probe`` answers with).
CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

#: Phase label -> the metric key that holds its duration, in connection order: the model's phases
#: that have a ``wsdoctor_phase_seconds`` series.
PHASES: tuple[tuple[str, str], ...] = tuple((p.label, p.metric) for p in MODEL_PHASES if p.exported)
#: Gauges of one measured number each (``NaN`` unless measured): name, metric key, help.
_MEASURED: tuple[tuple[str, str, str], ...] = (
    (
        "wsdoctor_idle_cutoff_seconds",
        "idle_cutoff_s",
        "Idle seconds after which a middlebox cut the connection without a close frame; NaN if none did.",
    ),
    (
        "wsdoctor_server_idle_timeout_seconds",
        "server_idle_timeout_s",
        "Idle seconds after which the server closed a silent stream (Deepgram: 1011 NET-0001); NaN if not seen.",
    ),
)
#: No label value longer than this (a hand-edited report or a plugin could carry anything).
_LABEL_LIMIT = 200
_REDACTOR = Redactor()


def escape_label_value(value: object) -> str:
    """A label value as it goes between the quotes: redacted, sanitized, bounded, then escaped per spec."""
    text = printable(_REDACTOR.text(str(value)), _LABEL_LIMIT)  # control characters become \\xNN
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float | int | None) -> str:
    """A sample value: ``NaN``/``+Inf``/``-Inf`` spelled as OpenMetrics wants; ``None`` is NaN."""
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class _Writer:
    def __init__(self, constant: Mapping[str, str]) -> None:
        self.lines: list[str] = []
        self.constant = dict(constant)

    def family(self, name: str, kind: str, help_text: str, unit: str | None = None) -> None:
        self.lines.append(f"# TYPE {name} {kind}")
        if unit:
            self.lines.append(f"# UNIT {name} {unit}")
        self.lines.append(f"# HELP {name} {help_text}")

    def sample(self, name: str, value: float | int | None, labels: Mapping[str, object] | None = None) -> None:
        merged = {**self.constant, **(labels or {})}
        if merged:
            inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in merged.items())
            self.lines.append(f"{name}{{{inner}}} {format_value(value)}")
        else:
            self.lines.append(f"{name} {format_value(value)}")


def _first_metric(report: Report, key: str) -> float | None:
    """The first finite value of metric ``key`` across the results (in report order)."""
    for result in report.results:
        value = _number(result.metrics.get(key))
        if value is not None and math.isfinite(value):
            return value
    return None


def _unique(items: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return list(dict.fromkeys(items))


class OpenMetricsReporter:
    """Renders a report in the OpenMetrics text format. ``target_label``: the value of the
    ``target`` label on every series (default: the report's credential-free display URL)."""

    name: ClassVar[str] = "openmetrics"

    def __init__(self, target_label: str | None = None) -> None:
        self.target_label = target_label

    def render(self, report: Report) -> str:
        summary = report.summary
        w = _Writer({"target": self.target_label if self.target_label is not None else report.target.url})

        w.family("wsdoctor_info", "gauge", "Version of wsdoctor that produced these metrics (always 1).")
        w.sample("wsdoctor_info", 1, {"version": report.wsdoctor_version})

        w.family("wsdoctor_probe_success", "gauge", "1 if nothing failed or broke and the run was not cut, else 0.")
        w.sample("wsdoctor_probe_success", 1 if summary.verdict in SUCCESS_VERDICTS else 0)

        w.family("wsdoctor_probe_interrupted", "gauge", "1 if the run was cut by its deadline before all checks ended.")
        w.sample("wsdoctor_probe_interrupted", 1 if report.interrupted else 0)

        w.family("wsdoctor_verdict", "gauge", "The verdict of the run: the series with value 1 is the current one.")
        for verdict in VERDICTS:
            w.sample("wsdoctor_verdict", 1 if summary.verdict == verdict else 0, {"verdict": verdict})

        w.family("wsdoctor_probe_duration_seconds", "gauge", "Wall time of the whole run.", unit="seconds")
        w.sample("wsdoctor_probe_duration_seconds", _number(report.duration_s))

        w.family(
            "wsdoctor_check_status",
            "gauge",
            "Status of each check: one series per status, the current one is 1.",
        )
        for result in report.results:
            for status in CHECK_STATUSES:
                w.sample(
                    "wsdoctor_check_status",
                    1 if result.status is status else 0,
                    {"check": result.check_id, "status": status.value},
                )

        w.family("wsdoctor_check_duration_seconds", "gauge", "Wall time of each check.", unit="seconds")
        for result in report.results:
            w.sample("wsdoctor_check_duration_seconds", _number(result.duration_s), {"check": result.check_id})

        w.family(
            "wsdoctor_phase_seconds",
            "gauge",
            "Duration of each connection phase; NaN when the phase was not reached or does not apply.",
            unit="seconds",
        )
        for phase, key in PHASES:
            w.sample("wsdoctor_phase_seconds", _first_metric(report, key), {"phase": phase})

        for name, key, help_text in _MEASURED:
            w.family(name, "gauge", help_text, unit="seconds")
            w.sample(name, _first_metric(report, key))

        w.family(
            "wsdoctor_finding",
            "gauge",
            "One series per warn/fail finding (code, cause, severity); info findings have none.",
        )
        findings = _unique(
            (f.code, f.cause, f.severity.value) for f in report.findings() if f.severity is not Status.INFO
        )
        for code, cause, severity in findings:
            w.sample("wsdoctor_finding", 1, {"code": code, "cause": cause, "severity": severity})

        w.family("wsdoctor_primary_cause", "gauge", "The primary cause of the run and its first finding, if any.")
        if summary.primary_cause is not None:
            w.sample(
                "wsdoctor_primary_cause",
                1,
                {"cause": summary.primary_cause, "code": summary.primary_finding or ""},
            )

        return "\n".join(w.lines) + "\n# EOF\n"
