"""cato compile on a real study point: the package's files, its ONNX model, and its verdict side in Zeek."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from cato.corpus import load_corpus
from cato.dataset import load_dataset
from cato.deploy.compile import CompileError, compile_package, pick_trial
from cato.deploy.manifest import Manifest, ManifestError
from cato.deploy.zeek_side import zeek_string
from cato.model import ModelSpec, OnnxModel, fit
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import read_zeek_log, run_zeek, static_load_script

pytestmark = [pytest.mark.zeek, pytest.mark.corpora]

FEATURES = ("orig_port", "resp_port", "ip_proto", "orig_size_mean", "resp_size_mean")


@pytest.fixture(scope="module")
def study(mini_corpus, cache, tmp_path_factory) -> Study:
    """A study of the mini corpus holding two measured points (compile does not care how they were measured)."""
    study = Study.open(tmp_path_factory.mktemp("study") / "s", StudySettings(str(mini_corpus), max_depth=5))
    for config, values in ((Config(FEATURES, 5, ModelSpec("rf", 20, 8)), {"f1": 0.91, "cpu": 80.0}),
                           (Config(FEATURES[:3], 5, ModelSpec("dt", 1, 6)), {"f1": 0.905, "cpu": 30.0})):
        number = study.storage.start_trial("search", config.to_dict())
        study.storage.finish_trial(number, values, {})
    return study


@pytest.fixture(scope="module")
def package(study, cache, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATO_CACHE", str(cache))
        chosen = pick_trial(study, pick="most-accurate")
        return compile_package(study, chosen, tmp_path_factory.mktemp("out") / "iot-model", alert_labels=["Aria"])


def test_picks_name_a_measured_trial(study):
    assert pick_trial(study, pick="most-accurate").values["f1"] == 0.91
    assert pick_trial(study, pick="cheapest-within", within=0.01).values["cpu"] == 30.0
    assert pick_trial(study, pick="cheapest-within", within=0.001).values["cpu"] == 80.0
    with pytest.raises(CompileError, match="no completed trial 99"):
        pick_trial(study, trial=99)


def test_the_package_is_a_git_repo_with_its_parts(package):
    path, manifest = package.path, package.manifest
    for part in ("zkg.meta", "manifest.json", "model.onnx", "scripts/__load__.zeek", "scripts/features.zeek",
                 "scripts/verdicts.zeek"):
        assert (path / part).is_file(), part
    log = subprocess.run(["git", "-C", str(path), "log", "--oneline"], capture_output=True, text=True, check=True)
    assert len(log.stdout.splitlines()) == 1
    assert not subprocess.run(["git", "-C", str(path), "status", "--porcelain"], capture_output=True,
                              text=True).stdout
    assert Manifest.read(path) == manifest
    assert manifest.features == list(FEATURES) and manifest.depth == 5 and manifest.alert_labels == ["Aria"]
    assert "script_dir = scripts" in (path / "zkg.meta").read_text()


def test_onnx_predicts_what_the_fitted_model_predicts(package, mini_corpus, cache):
    ds = load_dataset(load_corpus(mini_corpus), 5, cache)
    x = ds.matrix(list(FEATURES), 5)
    model = fit(x, ds.y, package.trial.config.model, 0)
    onnx_model = OnnxModel.load(package.path / "model.onnx")
    assert onnx_model.features == list(FEATURES) and onnx_model.classes == package.manifest.labels == ds.classes
    np.testing.assert_array_equal(onnx_model.predict(x), model.predict(x))


def test_verdicts_come_back_as_a_log_and_notices(package, mini_corpus, zeek, tmp_path):
    """Zeek with cato and the package loaded: every vector is published; verdicts raised for them (here
    by Zeek itself, as the worker would send them) are logged, alert labels raise a Notice, and a
    verdict with another schema hash is refused and counted."""
    driver = tmp_path / "driver.zeek"
    driver.write_text("""
global vectors = 0;

event Cato::vector_ready(info: Cato::Info)
	{
	local label = ++vectors % 2 == 0 ? "Aria" : "HueSwitch";
	event Cato::verdict(info$uid, info$id, label, 0.75, Cato::schema);
	event Cato::verdict(info$uid, info$id, label, 0.75, "not-this-schema");
	}

# After the package's own handler: the count so far (zeek_done comes before the last connections' events).
event Cato::verdict(uid: string, id: conn_id, label: string, score: double, model_schema: string) &priority=-10
	{
	print "refused", Cato::refused_verdicts;
	}
""")
    corpus = load_corpus(mini_corpus)
    capture = corpus.path_of(corpus.captures[0])
    run = run_zeek(capture, [static_load_script(), package.path / "scripts", driver], workdir=tmp_path / "run",
                   zeek=zeek)
    verdicts = read_zeek_log(run.log("cato_verdict"))
    assert not (tmp_path / "run" / "cato.log").exists(), "a package publishes vectors, it does not log them"
    refused = int((tmp_path / "run" / "zeek.stdout").read_text().split()[-1])
    assert refused == len(verdicts) > 0
    assert set(verdicts["label"]) == {"Aria", "HueSwitch"} and (verdicts["latency"] >= 0).all()
    notices = read_zeek_log(run.log("notice"))
    aria = verdicts[verdicts["label"] == "Aria"]
    assert list(notices["note"].unique()) == ["Cato::Alert"] and sorted(notices["uid"]) == sorted(aria["uid"])


def test_compile_refuses_an_unknown_alert_label_and_an_existing_directory(study, package, cache, monkeypatch):
    monkeypatch.setenv("CATO_CACHE", str(cache))
    chosen = pick_trial(study, pick="most-accurate")
    with pytest.raises(CompileError, match="Nope"):
        compile_package(study, chosen, package.path.with_name("other"), alert_labels=["Nope"])
    with pytest.raises(CompileError, match="already exists"):
        compile_package(study, chosen, package.path)


def test_a_manifest_edited_by_hand_is_refused(package, tmp_path):
    data = json.loads((package.path / "manifest.json").read_text())
    data["depth"] = 7
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="schema hash"):
        Manifest.read(tmp_path)
    data["format"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="newer"):
        Manifest.read(tmp_path)


def test_user_strings_cannot_inject_zeek_code():
    hostile = 'x"; print "pwned"; #\\\n\u00e9'
    literal = zeek_string(hostile)
    assert literal.count('"') - literal.count('\\"') == 2 and "\n" not in literal
