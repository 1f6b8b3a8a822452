"""Socket facts every probe shares: how a connection failure is named, and the trust a client has.

Theory of operation. A probe never judges; it names what happened. :func:`classify_oserror` maps
an exception to the closed vocabulary :class:`wsdoctor.model.Outcome` (``refused``, ``timeout``,
``tls-verify-failed``, ...); what has no name of its own is ``oserror``, and :func:`error_text`
keeps its errno's name (``ECONNABORTED``) in the observation's ``error`` so nothing is lost.
:func:`tls_context` is the trust a typical client has (system store plus certifi, or exactly
``--ca-file``). Stdlib only; nothing here opens a socket -- :mod:`wsdoctor.probes.connect` does.
"""

from __future__ import annotations

import errno
import socket
import ssl

from wsdoctor.model import Outcome

__all__ = ["classify_oserror", "describe_oserror", "error_text", "tls_context"]


def classify_oserror(exc: BaseException) -> Outcome:
    """Name a connection failure as a fact; ``analyze()`` decides what it means. Failures without
    a name of their own are :attr:`Outcome.OSERROR`; :func:`describe_oserror` keeps the errno."""
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.REFUSED
    if isinstance(exc, ConnectionResetError):
        return Outcome.RESET
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Outcome.TLS_VERIFY_FAILED
    if isinstance(exc, ssl.SSLError):
        return Outcome.TLS_ERROR
    if isinstance(exc, socket.gaierror):
        return Outcome.DNS_ERROR
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return Outcome.UNREACHABLE
    return Outcome.OSERROR


def describe_oserror(exc: BaseException) -> str:
    """One line for an observation's ``error``: the errno's name (``ECONNABORTED``) when there is
    one, then the message -- the detail an ``oserror`` outcome leaves to the reader."""
    text = str(exc) or type(exc).__name__
    code = getattr(exc, "errno", None)
    name = errno.errorcode.get(code) if isinstance(code, int) else None
    if name and name not in text:
        text = f"{name}: {text}"
    return text[:300]


def error_text(exc: BaseException, outcome: Outcome, limit: int = 300) -> str:
    """An observation's ``error`` for ``exc`` classified as ``outcome``: the exception's words, and
    for an ``oserror`` -- which has no name of its own -- the errno's name in front."""
    text = describe_oserror(exc) if outcome is Outcome.OSERROR else (str(exc) or type(exc).__name__)
    return text[:limit]


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The trust a typical client has: the system store plus certifi, or exactly ``--ca-file``."""
    if ca_file:
        ctx = ssl.create_default_context(cafile=ca_file)
    else:
        import certifi

        ctx = ssl.create_default_context()
        ctx.load_verify_locations(certifi.where())
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
