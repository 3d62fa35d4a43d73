"""The evaluator: what one trial measures, macro-F1 from grouped cross-validation and serving cost
from real Zeek (see ``cato.search.objectives`` for the definitions)."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cato.cache import default_cache_dir, write_text_atomic
from cato.codegen import generate
from cato.corpus import Corpus
from cato.dataset import Dataset
from cato.features import resolve
from cato.model import (
    DEFAULT_MODEL_SEEDS,
    OnnxModel,
    Vocabularies,
    cross_val_f1,
    fit,
    grouped_folds,
    learned_columns,
    to_onnx,
)
from cato.search.space import Config
from cato.zeek.profiling import profile

QUALITY_VERSION = 2


@dataclass
class Evaluator:
    corpus: Corpus
    dataset: Dataset
    objectives: tuple[str, ...]
    folds: int = 5
    seed: int = 0
    profile_repeat: int = 1
    cache_dir: Path | None = None
    zeek: Path | None = None
    #: Profile with Zeek's ``-O ZAM``.
    zam: bool = False
    model_seeds: int = DEFAULT_MODEL_SEEDS
    #: The engine costs are measured with (``script`` or ``native``): the one the deployment will run.
    engine: str = "script"
    #: What the deployment runs before cato: a cost is the marginal cost over it.
    deployment: str = "bare"
    _folds: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._folds = grouped_folds(self.dataset.y, self.dataset.groups, self.folds, self.seed)

    def evaluate(self, config: Config, progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
        """(objective values, details) of one configuration."""
        step = progress or (lambda _m: None)
        t0 = time.perf_counter()
        x = self.dataset.matrix(config.features, config.depth, config.deadline)
        step("cross-validation")
        details = self._quality(config, x)

        step("profiling in Zeek")
        t1 = time.perf_counter()
        script = generate(resolve(",".join(config.features)), (config.depth,), "auto", config.deadline,
                          engine=self.engine)
        # The objective is the script's own CPU less start-ups: a baseline shared by every trial will do.
        cost = profile(self.corpus, script, baseline=self.deployment, repeat=self.profile_repeat, attribute=False,
                       cache_dir=self.cache_dir, zeek=self.zeek, zam=self.zam, paired=False)
        cpu_us = cost.steady_cpu_us_per_conn
        extraction_ms = max(cost.marginal_cpu_us_per_conn, 0.0) / 1000.0
        details.update(profile_s=time.perf_counter() - t1, profile_cached=cost.cached,
                       script_sha256=cost.script_sha256, strategy=cost.strategy, zam=cost.zam,
                       cpu_s=cost.cpu_s, cpu_s_runs=cost.cpu_s_runs, baseline_cpu_s=cost.baseline_cpu_s,
                       cpu_ratio=cost.cpu_ratio,
                       streams=cost.streams, startup_cpu_s=cost.startup_cpu_s,
                       baseline_steady_cpu_us_per_conn=cost.baseline_steady_cpu_us_per_conn,
                       marginal_cpu_us_per_conn=cost.marginal_cpu_us_per_conn,
                       time_to_decision_ms=cost.time_to_decision_ms, connections=cost.connections)
        # Time-to-decision is recorded for every trial, an objective or not, so that any front can be
        # compared with ALL@max on it; ONNX inference (well under a millisecond, but exporting a large
        # forest takes seconds) is measured when latency is an objective.
        inference = details["inference_ms"]["p50"] if "inference_ms" in details else 0.0
        latency = cost.time_to_decision_ms["mean"] + extraction_ms + inference
        details["latency_ms"] = latency
        values = {"f1": details["f1"], "cpu": cpu_us, "latency": latency}
        details["eval_s"] = time.perf_counter() - t0
        return {k: float(values[k]) for k in self.objectives}, details

    def _quality(self, config: Config, x: np.ndarray) -> dict:
        """Cross-validated F1 (and ONNX inference time when latency is an objective), cached by dataset,
        configuration, folds and seed: baselines and repeated studies share them."""
        timed = "latency" in self.objectives
        seeds = [self.model_seeds] if self.model_seeds > 1 else []  # one seed: the key it always had
        key = hashlib.sha256(json.dumps([QUALITY_VERSION, self.dataset.key, config.key(), self.folds,
                                         self.seed, timed, *seeds]).encode()).hexdigest()
        path = (self.cache_dir or default_cache_dir()) / "quality" / f"{key[:32]}.json"
        if path.exists():
            return {**json.loads(path.read_text()), "quality_cached": True}
        t0 = time.perf_counter()
        scores = cross_val_f1(x, self.dataset.y, self._folds, config.model, self.seed, self.model_seeds,
                              learned_columns(config.features))
        result = {"f1": scores["f1"], "f1_std": scores["f1_std"], "f1_folds": scores["f1_folds"],
                  "f1_seeds": scores["f1_seeds"],
                  "fit_s": time.perf_counter() - t0}
        if timed:
            result["inference_ms"] = self.inference_ms(config, x)
        write_text_atomic(path, json.dumps(result))
        return {**result, "quality_cached": False}

    def inference_ms(self, config: Config, x: np.ndarray) -> dict:
        """ONNX Runtime latency of the model fitted on the whole corpus, one vector at a time."""
        x = Vocabularies(learned_columns(config.features)).fit(x).transform(x)
        model = fit(x, self.dataset.y, config.model, self.seed)
        with tempfile.TemporaryDirectory(prefix="cato-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(to_onnx(model, config.features, self.dataset.classes))
            onnx_model = OnnxModel.load(path)
            timing = onnx_model.time_per_vector(x, samples=300)
            timing["model_bytes"] = path.stat().st_size
        return timing
