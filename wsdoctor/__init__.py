"""wsdoctor: find the first layer that breaks a WebSocket to Deepgram's streaming API.

This package exports the plugin author's kit and nothing else; the runner, registry, probes and
mock are internal. Importing it costs nothing: the kit is loaded on first access (PEP 562
``__getattr__``, as ``websockets`` defers its client), so ``wsdoctor --help`` -- which needs only
``__version__`` -- never imports the model, its dataclasses or ``typing``.
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats it as True)
if TYPE_CHECKING:
    from wsdoctor.check import Check, Context, ObservingCheck, RunOptions, Secret, finding
    from wsdoctor.errors import UsageError, WsdoctorError
    from wsdoctor.model import CheckResult, Finding, Report, Status, Target
    from wsdoctor.record import Record

__version__ = "0.1.0"

__all__ = [
    "Check",
    "CheckResult",
    "Context",
    "Finding",
    "ObservingCheck",
    "Record",
    "Report",
    "RunOptions",
    "Secret",
    "Status",
    "Target",
    "UsageError",
    "WsdoctorError",
    "__version__",
    "finding",
]

#: Where each exported name lives (imported on first access, then cached in the module).
_LAZY = {
    "Check": "wsdoctor.check",
    "Context": "wsdoctor.check",
    "ObservingCheck": "wsdoctor.check",
    "finding": "wsdoctor.check",
    "Record": "wsdoctor.record",
    "RunOptions": "wsdoctor.check",
    "Secret": "wsdoctor.check",
    "UsageError": "wsdoctor.errors",
    "WsdoctorError": "wsdoctor.errors",
    "CheckResult": "wsdoctor.model",
    "Finding": "wsdoctor.model",
    "Report": "wsdoctor.model",
    "Status": "wsdoctor.model",
    "Target": "wsdoctor.model",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
