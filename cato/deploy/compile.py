"""``cato compile``: a study's point as a self-contained zkg package.

The package holds the generated feature script (publishing one vector per connection), the verdict
side (log and Notices), the model trained on the whole corpus with the point's features, depth and
model spec, exported to ONNX, and a manifest. It is a git repository with one commit, as
``zkg install PKG`` wants it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cato.cache import default_cache_dir
from cato.codegen import generate
from cato.dataset import load_dataset
from cato.deploy.manifest import Manifest, ManifestError
from cato.codegen.static import package_module
from cato.deploy.zeek_side import (COMPACT, RECORDS, load_script, model_script, package_topics, serving_script,
                                   serving_text, zeek_string)
from cato.features import resolve
from cato.model import OnnxModel, Vocabularies, fit, learned_columns, to_onnx
from cato.search.objectives import F1_TOLERANCE
from cato.search.space import Config
from cato.study import Study, Trial, best_within
from cato.zeek.logs import log_string_bytes

PICKS = ("most-accurate", "cheapest-within")
MODEL_NAME = "model.onnx"
#: A package's vocabularies: per learned feature, its strings in code order (as Zeek's logs write them).
VOCABULARIES_NAME = "vocabularies.json"


class CompileError(RuntimeError):
    pass


@dataclass
class CompiledPackage:
    path: Path
    manifest: Manifest
    trial: Trial


def pick_trial(study: Study, trial: int | None = None, pick: str | None = None,
               within: float = F1_TOLERANCE) -> Trial:
    """The trial numbered ``trial``, or the one a ``pick`` names: the most accurate, or the cheapest within
    ``within`` F1 of the most accurate."""
    trials = study.measured()
    if not trials:
        raise CompileError(f"{study.directory}: the study has no completed trial")
    if (trial is None) == (pick is None):
        raise CompileError("give a trial number or a pick, one of them")
    if trial is not None:
        for t in trials:
            if t.number == trial:
                return t
        raise CompileError(f"{study.directory}: no completed trial {trial}")
    best = max(trials, key=lambda t: t.values["f1"])
    if pick == "most-accurate":
        return best
    if pick == "cheapest-within":
        chosen = best_within(trials, best.values["f1"], within)
        assert chosen is not None  # the best is within any tolerance of itself
        return chosen
    raise CompileError(f"unknown pick {pick!r} (choose from {', '.join(PICKS)})")


def compile_package(study: Study, chosen: Trial, output: Path, *, alert_labels: Sequence[str] = (),
                    alert_min_score: float = 0.5,
                    name: str | None = None, deadline: float | None = None, engine: str | None = None,
                    vector_form: str | None = None,
                    progress: Callable[[str], None] | None = None) -> CompiledPackage:
    """Write the package of ``chosen`` into ``output`` (which must not exist). ``engine``: the one that
    computes the features (None: the one the study measured its costs with); a ``native`` package
    needs cato's plugin installed. ``vector_form``: how its vectors travel to ``cato serve``, ``compact``
    (the native engine only, its default) or ``records`` (the script engine's, and the interoperable
    JSON form on Zeek's WebSocket API)."""
    step = progress or (lambda _m: None)
    output = Path(output)
    if output.exists():
        raise CompileError(f"{output}: already exists; choose a new directory")
    settings = study.settings
    corpus = settings.load_corpus()
    step("loading the dataset")
    # The vectors the deployment makes: extracted under what it runs before cato.
    deployment = getattr(settings, "deployment", "bare")
    dataset = load_dataset(corpus, settings.max_depth, default_cache_dir(), deployment=deployment)
    config = chosen.config
    if not 0.0 <= alert_min_score <= 1.0:
        raise CompileError(f"--alert-min-score {alert_min_score}: a probability, from 0 to 1")
    unknown = sorted(set(alert_labels) - set(dataset.classes))
    if unknown:
        raise CompileError(f"--alert {', '.join(unknown)}: not a label of {settings.corpus} "
                           f"(labels: {', '.join(dataset.classes)})")
    if deadline is None:  # the point's own deadline, unless the user sets another
        deadline = config.deadline
    engine = engine or getattr(settings, "engine", "script")
    vector_form = vector_form or (COMPACT if engine == "native" else RECORDS)
    if vector_form not in (COMPACT, RECORDS):
        raise CompileError(f"--vector-form {vector_form}: choose {COMPACT} or {RECORDS}")
    if vector_form == COMPACT and engine != "native":
        raise CompileError("--vector-form compact needs --engine native: only cato's plugin writes compact blocks")
    name = name or _model_name(study, chosen)
    # A module of its own, so that several packages run in one Zeek.
    module = package_module(name)
    selected = resolve(",".join(config.features))
    # The model takes the features in the order the script's vectors carry them (the catalog's).
    features = [f.name for f in selected]
    step("training on the whole corpus")
    # Trained on the vectors the script emits: with a deadline, what each connection had by then. A
    # string's codes are learned here, and Zeek applies them (the script carries the vocabularies).
    x = dataset.matrix(features, config.depth, deadline)
    vocab = Vocabularies(learned_columns(features)).fit(x)
    x = vocab.transform(x)
    words = {features[j]: vocab.words(j, dataset.strings(features[j])) for j in vocab.columns}
    model = fit(x, dataset.y, config.model, settings.seed)
    # Its vectors carry numbers only: the strings stay in Zeek (and a hostile one never reaches a worker).
    script = generate(selected, (config.depth,), "auto", deadline, engine, module=module,
                      vocabularies={f: [log_string_bytes(w) for w in ws] for f, ws in words.items()},
                      raw_strings=False)
    onnx_bytes = to_onnx(model, features, dataset.classes)
    manifest = Manifest(features=features, depth=config.depth, labels=list(dataset.classes),
                        model=config.model.to_dict(), alert_labels=sorted(set(alert_labels)), trial=chosen.number,
                        values=dict(chosen.values), corpus=settings.corpus, label_column=settings.label_column,
                        strategy=script.strategy, deadline=deadline,
                        extra={"trial_name": chosen.name, "alert_min_score": alert_min_score, "deployment": deployment,
                               "topics": package_topics(name), "module": module,
                               "connections": int(dataset.connections), "engine": script.engine,
                               "vector_form": vector_form,
                               "vocabularies": {f: len(ws) for f, ws in words.items()}})
    work = output.with_name(f".{output.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    try:
        scripts = work / "scripts"
        scripts.mkdir(parents=True)
        (scripts / "__load__.zeek").write_text(load_script(name, module))
        (scripts / "features.zeek").write_text(script.text + _online_settings())
        shutil.copyfile(serving_script("common.zeek"), scripts / "common.zeek")
        (scripts / "verdicts.zeek").write_text(serving_text("verdicts.zeek", module))
        (scripts / "model.zeek").write_text(model_script(manifest, name))
        (work / MODEL_NAME).write_bytes(onnx_bytes)
        if words:  # what the codes stand for, as Zeek's logs write the strings (code = position + 1)
            (work / VOCABULARIES_NAME).write_text(json.dumps(words, indent=1, ensure_ascii=False) + "\n")
        manifest.write(work)
        (work / "zkg.meta").write_text(_zkg_meta(manifest, name))
        _write_tests(work / "testing", manifest)
        (work / ".gitignore").write_text("testing/run-tests.out\n")
        _check_model(work / MODEL_NAME, manifest, x, model)
        origin = f"trial {chosen.number}" if chosen.number >= 0 else f"configuration {config.key()}"
        _git_commit(work, f"cato compile: {origin} of {study.directory}")
        work.rename(output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CompiledPackage(output, manifest, chosen)


def package_vocabularies(package: Path) -> dict[str, list[bytes]]:
    """The vocabularies a compiled package's script codes strings with, as the bytes Zeek sees: for
    ``cato.dataset.extract(..., vocabularies=)`` to make the vectors that package makes."""
    path = Path(package) / VOCABULARIES_NAME
    if not path.exists():
        return {}
    return {f: [log_string_bytes(w) for w in words] for f, words in json.loads(path.read_text()).items()}


def compile_config(study: Study, config: Config, output: Path, **options) -> CompiledPackage:
    """The package of ``config``, a point of the study's space whether the study measured it or not (a
    benchmark's fixed configuration, say): trained as :func:`compile_package` trains, its manifest
    records no trial and no measured values. ``options``: those of :func:`compile_package`."""
    return compile_package(study, Trial(-1, "config", None, config, {}), output, **options)


def _model_name(study: Study, chosen: Trial) -> str:
    """The model's name unless the user gives one: where it came from (the study, and its point), not the
    folder the package is written to (``-o build/pkg`` would name every model "pkg")."""
    point = chosen.name or (f"trial{chosen.number}" if chosen.number >= 0 else "config")
    return re.sub(r"[^A-Za-z0-9_.@-]", "-", f"{study.directory.resolve().name}-{point}")


def _online_settings() -> str:
    return """
# Online: vectors go to the inference worker (cato serve), not to cato.log.
redef publish_vectors = T;
redef log_vectors = F;
"""


def _zkg_meta(manifest: Manifest, name: str) -> str:
    features = ", ".join(manifest.features)
    # The native engine's features are computed by cato's plugin, which cato's own package builds. zkg
    # resolves a dependency through its package sources or a git URL, and cato has neither that is
    # portable: the need is a comment, and the feature script's @load-plugin fails clearly without it.
    plugin = ("# Needs cato's Zeek plugin (Cato::Native): zkg install cato before this package.\n"
              if manifest.extra.get("engine") == "native" else "")
    return f"""[package]
description = cato model {name}: {len(manifest.features)} features at depth {manifest.depth} ({features}),
\t{len(manifest.labels)} labels, cross-validated macro-F1 {manifest.values.get('f1', float('nan')):.3f}.
\tServe its model with: cato serve <this package>.
tags = cato, machine learning
script_dir = scripts
test_command = cd testing && sh run-tests
{plugin}depends =
\tzeek >=8.0.0
"""


def _write_tests(testing: Path, manifest: Manifest) -> None:
    """The package's own test (zkg runs it before it installs): it loads into bare Zeek, with or without
    cato installed, as the package it was compiled as. Plain sh and Zeek: zkg shows a test's exit code
    only, and a test runner missing from PATH (btest) would fail it for a cause the user cannot see."""
    testing.mkdir(parents=True)
    m = manifest.module
    (testing / "loads.zeek").write_text(f"""# The package loads into bare Zeek and is the one compiled: its schema, depth and settings.
event zeek_init()
	{{
	if ( {m}::schema != {zeek_string(manifest.schema)} || |{m}::depths| != 1 || {m}::depths[0] != {manifest.depth} )
		print "not the package compiled", {m}::schema, {m}::depths;
	if ( ! {m}::publish_vectors || {m}::log_vectors )
		print "not publishing vectors";
	}}
""")
    (testing / "run-tests").write_text("""#!/bin/sh
# The package's test: Zeek loads it and says nothing (any output is an error or a wrong package).
# Its output goes to run-tests.out, beside this file.
cd "$(dirname "$0")"
zeek -b ../scripts loads.zeek >run-tests.out 2>&1
status=$?
if [ $status -ne 0 ] || [ -s run-tests.out ]; then
	cat run-tests.out >&2
	exit 1
fi
""")
    (testing / "run-tests").chmod(0o755)


def _check_model(path: Path, manifest: Manifest, x: np.ndarray, model) -> None:
    """The exported model loads, carries the manifest's feature order and classes, and predicts what the
    fitted model predicts."""
    onnx_model = OnnxModel.load(path)
    try:
        manifest.check_model(onnx_model)
    except ManifestError as e:
        raise CompileError(str(e)) from None
    agree = float((onnx_model.predict(x).astype(np.int64) == model.predict(x)).mean()) if len(x) else 1.0
    if agree < 0.999:
        raise CompileError(f"{path}: ONNX Runtime agrees with the fitted model on only {agree:.2%} of the "
                           "training vectors")


def _git_commit(work: Path, message: str) -> None:
    git = ["git", "-C", str(work), "-c", "user.name=cato", "-c", "user.email=cato@localhost",
           "-c", "commit.gpgsign=false"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", message]):
        run = subprocess.run(git + argv, capture_output=True, text=True)
        if run.returncode != 0:
            raise CompileError(f"git {argv[0]} in {work} failed: {run.stderr.strip()}")
