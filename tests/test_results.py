"""benchmarks/RESULTS.md: every table is what its results file says, and a changed file shows."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import provenance  # noqa: E402
import results  # noqa: E402


@pytest.fixture(scope="module")
def tables() -> dict[str, str]:
    return results.rendered()


def test_every_table_of_results_md_is_rendered_from_its_json(tables):
    text, changed = results.render(results.RESULTS_MD.read_text(), tables)
    assert changed == [], f"run `python benchmarks/results.py`: {changed} differ from their results files"
    assert text == results.RESULTS_MD.read_text()
    for name, table in tables.items():  # each block says where its figures come from, or follows one that does
        assert "|---" in table, name


def test_a_changed_results_file_changes_its_table(tmp_path):
    shutil.copytree(provenance.RESULTS, tmp_path / "results")
    path = tmp_path / "results" / "tune_protocol.json"
    data = json.loads(path.read_text())
    for seed in data["ndpi-app"]["seeds"].values():  # the table shows the median over seeds
        seed["20"]["bo_overhead_s_median"] = 99.0
    path.write_text(json.dumps(data))
    _, changed = results.render(results.RESULTS_MD.read_text(), results.rendered(tmp_path / "results"))
    assert changed == ["tune-protocol"]


def test_a_results_file_without_its_commit_is_refused_by_name(tmp_path):
    shutil.copytree(provenance.RESULTS, tmp_path / "results")
    path = tmp_path / "results" / "analyzer_features.json"
    data = json.loads(path.read_text())
    del data["commit"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="analyzer_features.json: no 'date' and 'commit'"):
        results.rendered(tmp_path / "results")


def test_blocks_and_renderers_must_name_the_same_tables(tables):
    stray = "<!-- table: nobody-renders-this -->\n| a |\n|---|\n<!-- /table -->\n"
    with pytest.raises(results.ResultsError, match="no renderer for nobody-renders-this"):
        results.render(results.RESULTS_MD.read_text() + stray, tables)
    with pytest.raises(results.ResultsError, match="no block in RESULTS.md for tune-protocol"):
        results.render(results.RESULTS_MD.read_text().replace("<!-- table: tune-protocol -->", "<!-- x -->", 1),
                       tables)


def test_an_ablation_variant_forks_the_full_searchs_baselines_and_initial_design(tmp_path):
    """``ablation.py --fork-from``: a variant's study starts with the full search's baselines and first
    ``initial`` search trials (their measurements as they were), nothing after, and its own sampler
    parameters; a later trial of the full search is not carried over. A variant of the initial design
    takes the baselines alone."""
    import ablation
    from cato.study import Study, StudySettings

    full = Study.open(tmp_path / "full", StudySettings("/nowhere", initial=2, sampler_params={"depth_sweep": True}))
    config = {"features": ["orig_pkts"], "depth": 3, "model": {"family": "dt", "n_trees": 1, "tree_depth": 8}}
    for kind, name, f1 in [("baseline", "all@50", 0.6), ("search", None, 0.4), ("search", None, 0.5),
                           ("search", None, 0.7)]:
        number = full.storage.start_trial(kind, config, name)
        full.storage.finish_trial(number, {"f1": f1, "cpu": 10.0}, {"source": kind})
    full.storage.close()
    ablation.fork(tmp_path / "full", tmp_path / "variant", {"front_with_baselines": False})
    variant = Study.open(tmp_path / "variant")
    assert [t.values["f1"] for t in variant.trials("baseline")] == [0.6]
    assert [t.values["f1"] for t in variant.trials("search")] == [0.4, 0.5]
    assert variant.settings.sampler_params == {"front_with_baselines": False}
    assert len(Study.open(tmp_path / "full").trials("search")) == 3
    # A variant that changes the initial design shares the baselines alone.
    ablation.fork(tmp_path / "full", tmp_path / "design", {"foothold_tolerance": 0.01}, design=False)
    other = Study.open(tmp_path / "design")
    assert [t.values["f1"] for t in other.trials("baseline")] == [0.6] and other.trials("search") == []


def test_a_baseline_is_above_beyond_the_noise_only_past_both_noises():
    """``ablation.above_beyond_noise``: a baseline counts as above the search only when its F1 beats, by
    more than the study's F1 noise, every search point costing at most ``COST_NOISE`` more."""
    import ablation
    from types import SimpleNamespace
    base = lambda name, f1, cpu: SimpleNamespace(name=name, values={"f1": f1, "cpu": cpu})  # noqa: E731
    search = [{"f1": 0.634, "cpu": 165.0}, {"f1": 0.50, "cpu": 20.0}]
    # ALL@10 is above the search's own front (cheaper at the same F1), but only by its cost's noise.
    assert ablation.above_beyond_noise([base("all@10", 0.635, 148.0)], search, 0.004) == {}
    # 30% cheaper is beyond the cost noise; a margin under the F1 noise is not above.
    assert ablation.above_beyond_noise([base("all@10", 0.635, 120.0)], search, 0.004) == {"all@10": 0.135}
    assert ablation.above_beyond_noise([base("rfe10@10", 0.503, 21.0)], search, 0.004) == {}


def test_the_protocol_counts_a_baseline_above_only_past_the_cost_noise():
    """``tune_protocol.margins_within_cost_noise``: a search trial up to ``COST_NOISE`` dearer than a
    baseline still counts against it; a baseline below every such trial has no margin at all."""
    import tune_protocol
    search = [{"f1": 0.146, "cpu": 72.4}, {"f1": 0.111, "cpu": 61.0}]
    # nDPI `label` s3: RFE's top 10 above the search's front at 68.5 µs, but 4 µs cheaper than a better trial.
    assert tune_protocol.margins_within_cost_noise({"rfe10@10": {"f1": 0.139, "cpu": 68.5}}, search) == {}
    margins = tune_protocol.margins_within_cost_noise({"rfe10@10": {"f1": 0.139, "cpu": 60.0},
                                                       "all@10": {"f1": 0.087, "cpu": 245.7}}, search)
    assert margins.keys() == {"rfe10@10"} and margins["rfe10@10"] == pytest.approx(0.139 - 0.111)
