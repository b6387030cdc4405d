"""Hatch build hook: generates the gateway.v1 gRPC stubs while a wheel is built.

The proto is read from ./proto (an sdist carries it there) or else from ../../proto (a checkout of
the repository). grpcio-tools' bundled protoc writes gateway_pb2.py and gateway_pb2_grpc.py, and
mypy-protobuf writes their .pyi stubs, into src/ibgw_client/proto/ (ignored by git, never
committed). Their `from gateway.v1 import ...` lines are rewritten to relative imports so that the
stubs live inside the package instead of claiming a top-level `gateway` package; the descriptor
keeps its canonical file name, gateway/v1/gateway.proto.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PROTO = Path("gateway/v1/gateway.proto")
PACKAGE = Path("src/ibgw_client/proto")
GENERATED = ("gateway_pb2.py", "gateway_pb2.pyi", "gateway_pb2_grpc.py", "gateway_pb2_grpc.pyi")
INIT = '''"""gateway.v1 messages and service stubs, generated from gateway.proto when this package was built."""
'''


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        include = find_proto_root(root)
        out = root / PACKAGE
        generate(include, out)
        # The generated files are ignored by git, and hatch leaves ignored files out unless told.
        for name in ("__init__.py", *GENERATED):
            build_data["force_include"][str(out / name)] = f"ibgw_client/proto/{name}"


def find_proto_root(root: Path) -> Path:
    for candidate in (root / "proto", root.parent.parent / "proto"):
        if (candidate / PROTO).is_file():
            return candidate
    raise RuntimeError(f"{PROTO} not found under {root / 'proto'} or {root.parent.parent / 'proto'}")


def plugin(tmp: Path, name: str, func: str) -> str:
    """The path of a protoc plugin: the console script of this interpreter's environment when it
    exists (isolated build environments do not put theirs on PATH), else a small wrapper."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, Path(sys.executable).parent / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    wrapper = tmp / name
    wrapper.write_text(f"#!{sys.executable}\nfrom mypy_protobuf.main import {func}\n{func}()\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def generate(include: Path, out: Path) -> None:
    from grpc_tools import protoc  # type: ignore[import-untyped]  # a build requirement

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        well_known = Path(protoc.__file__).parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"-I{include}",
            f"-I{well_known}",
            f"--plugin=protoc-gen-mypy={plugin(tmp, 'protoc-gen-mypy', 'main')}",
            f"--plugin=protoc-gen-mypy_grpc={plugin(tmp, 'protoc-gen-mypy_grpc', 'grpc')}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            str(include / PROTO),
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise RuntimeError(f"protoc failed (exit {rc}) on {include / PROTO}")
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        (out / "__init__.py").write_text(INIT)
        for name in GENERATED:
            text = (tmp / PROTO.parent / name).read_text()
            text = re.sub(r"^from gateway\.v1 import ", "from . import ", text, flags=re.M)
            if re.search(r"^\s*(from|import) gateway\b", text, flags=re.M):
                raise RuntimeError(f"{name}: an absolute gateway.v1 import is left after rewriting")
            (out / name).write_text(text)
