"""The one exception root of wsdoctor.

Everything wsdoctor raises on purpose derives from :class:`WsdoctorError`. A *network* failure is
never an exception here: a refused connection is an observation, then a finding. Exceptions are for
the tool's own situation:

- :class:`UsageError`  -- bad flag, bad URL, unreadable file, a report.json that isn't ours (exit 2).
- :class:`PluginError` -- a plugin won't load, or two plugins claim one check id.
- :class:`InternalError` -- one of our invariants broke, i.e. a bug in wsdoctor (exit 3).
"""

from __future__ import annotations

__all__ = ["InternalError", "PluginError", "UsageError", "WsdoctorError"]


class WsdoctorError(Exception):
    """Root of everything wsdoctor raises on purpose."""


class UsageError(WsdoctorError):
    """The user asked for something we cannot do: exit code 2 with a one-line message."""


class PluginError(WsdoctorError):
    """A check or reporter plugin could not be loaded or conflicts with another one."""


class InternalError(WsdoctorError):
    """A wsdoctor invariant broke: this is a bug, reported with exit code 3."""
