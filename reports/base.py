"""What a reporter is, and how one is found.

A reporter turns a :class:`~wsdoctor.model.Report` into text (terminal, JSON, HTML, JUnit...). It
never probes and never writes files: ``render()`` returns the whole document as a ``str`` and the
caller writes it (``wsdoctor.fileio.atomic_write_text``), so ``wsdoctor render report.json`` can
re-render any saved report with the same code path as a live run.

Built-in reporters come in through the same door as third-party ones: the ``wsdoctor.reporters``
entry-point group (``pyproject.toml``), looked up by name with
:func:`wsdoctor.registry.load_reporter` (re-exported here for existing callers) -- the only way
``run``, ``render`` and ``load`` get one, for ``--report NAME=PATH`` and its shorthands (``--json``,
``--html``...) alike. A reporter is constructed with no arguments (the terminal summary, the
default human output, also accepts ``color=`` and ``width=``).

A new reporter touches two files: its module, and its entry point in ``pyproject.toml``.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from wsdoctor.model import Report, rest_fallback_applies
from wsdoctor.registry import REPORTER_GROUP, load_reporter, reporter_names

__all__ = ["ENTRY_POINT_GROUP", "Reporter", "load_reporter", "reporter_names", "rest_fallback_applies"]

ENTRY_POINT_GROUP = REPORTER_GROUP

@runtime_checkable
class Reporter(Protocol):
    """Renders a report to text. ``name`` is the entry-point name (``"json"``, ``"terminal"``)."""

    name: ClassVar[str]

    def render(self, report: Report) -> str:
        """The complete document. Pure: same report, same text; no I/O."""
        ...
