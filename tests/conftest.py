"""Test-wide settings: offline by default, remote tests opt-in, shared fixtures."""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# exported ONNX graphs of the tests' models go to a folder of this run, not the user's cache
_CACHE = tempfile.mkdtemp(prefix="galaxalign-test-cache-")
os.environ["GALAXALIGN_ASTRO_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


def pytest_addoption(parser):
    parser.addoption(
        "--remote-data",
        action="store_true",
        default=False,
        help="run tests marked remote_data (they need the internet)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--remote-data"):
        return
    skip = pytest.mark.skip(reason="needs --remote-data (internet)")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)


def _is_local(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_remote_network(request, monkeypatch):
    """remote_data_strict: an unmarked test that connects beyond loopback fails."""
    if "remote_data" in request.keywords:
        return
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            msg = f"test tried to reach {address!r}; mark it remote_data"
            raise RuntimeError(msg)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def micro_model(tmp_path_factory):
    """A gxa-micro model trained for a few steps on synthetic blobs (both stages)."""
    from tests.cutout_factory import train_blob_model

    out = tmp_path_factory.mktemp("models") / "micro"
    return train_blob_model("gxa-micro", out, n=80, n_train=60, name="micro-test")


@pytest.fixture(scope="session")
def sources_model(micro_model, tmp_path_factory):
    """The micro model with the photutils source steps switched on in its preprocessing."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("models") / "micro-sources"
    shutil.copytree(micro_model, folder)
    spec_path = folder / "galaxalign.json"
    spec = json.loads(spec_path.read_text())
    spec["preprocess"]["sources"] = {}
    spec_path.write_text(json.dumps(spec))
    return folder


@pytest.fixture
def cutout_dir(tmp_path):
    """Five good Legacy-Survey-like cutouts of 64 px."""
    from tests.cutout_factory import galaxy_cube, write_cube

    folder = tmp_path / "cutouts"
    folder.mkdir()
    for i in range(5):
        write_cube(folder / f"g{i}.fits", galaxy_cube(64, q=0.3 + 0.15 * i, seed=i), ra=150 + i)
    return folder
