"""wsdoctor: find the first layer that breaks a WebSocket to Deepgram's streaming API.

This package exports the plugin author's kit and nothing else; the runner, registry, probes and
mock are internal. Importing it is stdlib-only (fast ``wsdoctor --help``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from wsdoctor.check import Check, Context, RunOptions, Secret
from wsdoctor.errors import UsageError, WsdoctorError
from wsdoctor.model import CheckResult, Finding, Report, Status, Target

__all__ = [
    "Check",
    "CheckResult",
    "Context",
    "Finding",
    "Report",
    "RunOptions",
    "Secret",
    "Status",
    "Target",
    "UsageError",
    "WsdoctorError",
    "__version__",
]
