"""The system tier: real nginx/squid/namespaces, root only. Marked ``system``; CI runs it."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/system/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.system)
