"""A minimal PEP 517 build backend (stdlib only) for this test package.

``pip install`` of a source directory needs a backend; setuptools without the ``wheel`` package
(as in an offline venv) cannot build a wheel, and fetching one needs the network. This one packs
the modules listed under ``[tool.build_backend]`` with the ``[project]`` metadata -- name, version,
entry points -- into a pure-Python wheel: all pip needs to install the package as any other.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _files() -> tuple[str, dict[str, bytes]]:
    config = tomllib.loads((HERE / "pyproject.toml").read_text(encoding="utf-8"))
    project = config["project"]
    dist = f"{project['name'].replace('-', '_')}-{project['version']}"
    files = {f"{m}.py": (HERE / f"{m}.py").read_bytes() for m in config["tool"]["build_backend"]["modules"]}
    info = f"{dist}.dist-info"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
        f"Summary: {project.get('description', '')}\nRequires-Python: {project.get('requires-python', '')}\n"
    ).encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: build_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    groups = project.get("entry-points", {})
    files[f"{info}/entry_points.txt"] = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for group, eps in groups.items()
    ).encode()
    record = [_record_line(path, data) for path, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    return dist, files


def build_wheel(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    dist, files = _files()
    name = f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / name, "w", zipfile.ZIP_DEFLATED) as whl:
        for path, data in files.items():
            whl.writestr(path, data)
    return name
