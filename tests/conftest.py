"""Shared fixtures. Zeek tests skip only outside CI; with CI=true a missing Zeek is an error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("CATO_CORPORA", ROOT.parent / "shared" / "corpora"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _zeek_or_none():
    from cato.zeek import ZeekNotFoundError, find_zeek

    try:
        return find_zeek()
    except ZeekNotFoundError:
        return None


def pytest_sessionstart(session):
    if IN_CI and _zeek_or_none() is None:
        raise pytest.UsageError("CI=true but Zeek was not found ($ZEEK, PATH, /opt/zeek/bin): "
                                "the Zeek tests must run in CI")


@pytest.fixture(scope="session")
def zeek() -> Path:
    path = _zeek_or_none()
    if path is None:
        pytest.skip("Zeek not installed (set $ZEEK or install into /opt/zeek)")
    return path


def corpus_path(name: str) -> Path:
    path = CORPORA / name
    if not path.is_dir():
        if IN_CI:  # a CI run without the corpora would pass with half its checks skipped
            pytest.fail(f"CI=true but the corpus {path} is absent: the corpus tests must run in CI")
        pytest.skip(f"corpus {path} absent")
    return path


@pytest.fixture(scope="session")
def iot_corpus() -> Path:
    return corpus_path("iot-sentinel")


@pytest.fixture(scope="session")
def ndpi_corpus() -> Path:
    return corpus_path("ndpi")


@pytest.fixture(scope="session")
def malformed_dir() -> Path:
    return corpus_path("malformed")


#: The mini corpus's devices: four IoT Sentinel devices, six setup runs each.
DEVICES = ("Aria", "HueSwitch", "WeMoSwitch", "EdimaxPlug1101W")


@pytest.fixture(scope="module")
def mini_corpus(iot_corpus, tmp_path_factory) -> Path:
    """Four IoT Sentinel devices, six setup runs each, linked where they lie (never copied)."""
    import pandas as pd

    from cato.corpus import link_subset
    labels = pd.read_csv(iot_corpus / "labels.csv")
    pick = labels[labels["label"].isin(DEVICES)].groupby("label").head(6)
    return link_subset(iot_corpus, pick["pcap"], tmp_path_factory.mktemp("mini"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def native_plugin(zeek) -> Path:
    """cato's Zeek plugin (the native engine) as `make setup` builds it. Tests that need it skip only
    outside CI; with CI=true a missing plugin is an error (`make setup` must build it)."""
    from cato.zeek import native_plugin_dir

    path = native_plugin_dir()
    if path is None:
        if IN_CI:
            pytest.fail("CI=true but cato's plugin is not built (plugin/build): `make setup` builds it")
        pytest.skip("cato's plugin is not built (run `make setup`, or plugin/configure && make -C plugin/build)")
    return path


def in_package(text: str, package: Path) -> str:
    """A site's Zeek ``text``, written for module ``Cato``, for the compiled package at ``package``: its
    per-package names moved to the package's own module, as a site names them."""
    from cato.deploy.manifest import Manifest
    from cato.deploy.zeek_side import for_package
    return for_package(text, Manifest.read(package))
