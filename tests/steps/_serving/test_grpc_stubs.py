"""The committed gRPC stubs are what grpcio-tools generates from the committed proto (steps/_serving/grpc/README.md
says how), and they import on the protobuf the server runs with, without the runtime check newer generators add
(so protobuf 4.25, the oldest the project allows, imports them too)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from tests.support.paths import ROOT

FOLDER = Path("steps/_serving/grpc")
PROTO = FOLDER / "grpc_predict_v2.proto"
GENERATED = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi", "grpc_predict_v2_pb2_grpc.py")
GENERATOR = "1.62.3"  # the grpcio-tools the committed files come from (README.md)
METHODS = {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
           "RepositoryModelLoad", "RepositoryModelUnload"}


def _committed_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The file descriptor compiled into the committed _pb2.py, read without importing it (tritonclient.grpc, which
    other tests load, defines the same protobuf package in the same descriptor pool)."""
    tree = ast.parse((ROOT / FOLDER / GENERATED[0]).read_text())
    blob = next(node.args[0] for node in ast.walk(tree) if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute) and node.func.attr == "AddSerializedFile")
    return descriptor_pb2.FileDescriptorProto.FromString(ast.literal_eval(blob))


def _without_json_names(file: descriptor_pb2.FileDescriptorProto) -> None:
    messages = list(file.message_type)
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        for field in message.field:
            field.ClearField("json_name")


def test_the_committed_stubs_are_what_grpcio_tools_generates(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (a dev extra) is not installed: cannot regenerate")
    (tmp_path / FOLDER).mkdir(parents=True)
    (tmp_path / PROTO).write_bytes((ROOT / PROTO).read_bytes())
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--pyi_out=.",
                    "--grpc_python_out=.", "--descriptor_set_out=set.pb", str(PROTO)], cwd=tmp_path, check=True)
    fresh = descriptor_pb2.FileDescriptorSet.FromString((tmp_path / "set.pb").read_bytes()).file[0]
    _without_json_names(fresh)  # protoc's descriptor set spells them out; the compiled-in descriptor leaves them out
    assert _committed_descriptor() == fresh  # every message, field number, type and method of the proto
    service = fresh.service[0]
    assert (fresh.package, service.name, {m.name for m in service.method}) == ("inference", "GRPCInferenceService",
                                                                               METHODS)
    for root in (ROOT, tmp_path):  # the committed stubs' method paths, and the ones generated now
        stubs = (root / FOLDER / GENERATED[2]).read_text()
        assert set(re.findall(r"'/inference\.GRPCInferenceService/(\w+)'", stubs)) == METHODS, root
    if metadata.version("grpcio-tools") == GENERATOR:
        for name in GENERATED:
            assert (tmp_path / FOLDER / name).read_text() == (ROOT / FOLDER / name).read_text(), name


def test_the_stubs_import_without_a_protobuf_runtime_check() -> None:
    code = (ROOT / FOLDER / GENERATED[0]).read_text()
    assert "runtime_version" not in code and "Protobuf Python Version: 4.25" in code
    assert "GRPC_GENERATED_VERSION" not in (ROOT / FOLDER / GENERATED[2]).read_text()
    done = subprocess.run([sys.executable, "-c", "from steps._serving.grpc import grpc_predict_v2_pb2 as pb, "
                           "grpc_predict_v2_pb2_grpc; print(pb.ModelInferRequest(model_name='m').model_name)"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "m"), done.stderr
