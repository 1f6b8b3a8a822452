"""A throw-away certificate authority for ``wsdoctor mock --tls``.

trustme makes a fresh CA and a server certificate for the loopback names; the CA goes to a temp
PEM file that the user passes to ``wsdoctor run --ca-file`` (or any client's CA option). Nothing is
installed into a trust store. trustme is an optional dependency (``wsdoctor[tls-mock]``), so it is
imported only here, inside the function.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Sequence

from wsdoctor.errors import UsageError

__all__ = ["make_server_tls"]


def make_server_tls(hostnames: Sequence[str] = ("127.0.0.1", "localhost")) -> tuple[ssl.SSLContext, str]:
    """Return a server SSL context for ``hostnames`` and the path of the CA certificate (PEM)."""
    try:
        import trustme
    except ImportError:
        raise UsageError("wsdoctor mock --tls needs trustme: pip install 'wsdoctor[tls-mock]'") from None
    ca = trustme.CA(organization_name="wsdoctor mock CA")
    cert = ca.issue_cert(*hostnames)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    with tempfile.NamedTemporaryFile("wb", prefix="wsdoctor-mock-ca-", suffix=".pem", delete=False) as fh:
        fh.write(ca.cert_pem.bytes())
        path = fh.name
    return ctx, path
