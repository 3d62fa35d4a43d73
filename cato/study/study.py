"""A tuning study: settings, importance, baselines and search trials, stored in ``DIR/study.db``.

``run_study`` is what ``cato tune`` does: build (or load from cache) the multi-depth dataset, rank
features by mutual information and RFE (once per study, stored), evaluate the feature-selection
baselines, then ask the sampler for trials until the budget of search trials is complete. Every
step that finished is in the database; running it again with ``resume`` continues from there.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence


from cato.corpus import Corpus, load_corpus
from cato.dataset import Dataset
from cato.executors import Executor, Outcome, evaluate_trial
from cato.features import FEATURES_BY_NAME
from cato.model import DEFAULT_MODEL_SEEDS, FAMILIES, ModelSpec, cross_val_f1, grouped_folds
from cato.search.importance import MI_EPSILON, mutual_information, rfe_ranking, top_k
from cato.search.evaluator import Evaluator
from cato.search.objectives import F1_TOLERANCE, f1_noise
from cato.search.pareto import COST_FLOOR, pareto_mask, to_max_space
from cato.search.samplers import SearchContext, make_sampler
from cato.search.space import Config, SearchSpace
from cato.study.storage import SQLiteStorage, TrialRecord, TrialState

DB_NAME = "study.db"
#: Model of the feature-selection baselines.
BASELINE_MODEL = ModelSpec("rf", 50, 16)
BASELINE_K = 10
#: The shortest decision deadline searched: below a millisecond a deadline decides at the first packet.
MIN_DEADLINE_S = 0.001
#: Connections cross-validation runs on by default: past it, a stratified sample (``Dataset.sample``), so a
#: trial's time and memory stop growing with the corpus.
CV_SAMPLE = 20_000
#: Bytes of capture a trial's cost is measured on by default: past it, whole captures drawn at random
#: (``Corpus.sample_captures``).
PROFILE_SAMPLE_MB = 64.0
#: The configuration the sample's F1 is checked against the whole corpus with: a small forest (trials fit
#: forests; one tree's gap swings more), on the features mutual information ranks first.
SAMPLE_CHECK_MODEL = ModelSpec("rf", 10, 16)
SAMPLE_CHECK_DRAWS = 3


class StudyError(RuntimeError):
    pass


@dataclass
class StudySettings:
    corpus: str
    label_column: str = "label"
    objectives: tuple[str, ...] = ("f1", "cpu")
    max_depth: int = 50
    seed: int = 0
    sampler: str = "botorch"
    folds: int = 5
    families: tuple[str, ...] = FAMILIES
    use_prior: bool = True
    baselines: bool = True
    #: Trials of the initial design before the model-based search starts.
    initial: int = 10
    #: Restrict the space to these features (the exhaustive ground-truth space, tests); None: all.
    features: tuple[str, ...] | None = None
    #: Measure costs with Zeek's ``-O ZAM`` (for deployments that compile their scripts).
    zam: bool = False
    #: Fits of a seeded model per cross-validation, F1 averaged (studies made before it had one).
    model_seeds: int = DEFAULT_MODEL_SEEDS
    #: The engine costs are measured with (``script``, or ``native``: cato's Zeek plugin).
    engine: str = "script"
    #: Search the decision deadline beside the depth (``cato tune`` turns it on with time-to-decision
    #: an objective, or ``--deadline-search``).
    deadline_search: bool = False
    #: Classes with fewer labelled rows are left out of the corpus (see ``load_corpus``).
    min_class_size: int = 1
    #: Cross-validate on a stratified sample of at most about this many connections (0: every one).
    cv_sample: int = CV_SAMPLE
    #: Measure costs on whole captures drawn at random up to this many MiB (0: the whole corpus).
    profile_sample_mb: float = PROFILE_SAMPLE_MB
    #: Zeek runs per cost measurement, their median taken: one run's CPU spreads by 10-15% between
    #: measurements, which decides near-ties at the front's cheap end and against the baselines.
    profile_repeat: int = 1
    #: What the deployment runs before cato (``cato.zeek.DEPLOYMENTS``): the dataset is extracted under
    #: it, and a trial's cost is its marginal cost over it.
    deployment: str = "bare"
    #: The sampler's tuning parameters (``cato.search.samplers.sampler_parameters``), e.g. a mechanism
    #: turned off for an ablation; the study keeps them, so a resumed study proposes as it began.
    sampler_params: dict = field(default_factory=dict)

    def load_corpus(self) -> Corpus:
        """The study's corpus, read as the study reads it (label column, classes left out)."""
        return load_corpus(self.corpus, self.label_column, self.min_class_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StudySettings":
        # Studies made before samples existed measured everything on the whole corpus: they go on so.
        d = {"cv_sample": 0, "profile_sample_mb": 0.0, **d}
        for k in ("objectives", "families", "features"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class Trial:
    number: int
    kind: str
    name: str | None
    config: Config
    values: dict
    details: dict = field(default_factory=dict)

    @classmethod
    def from_record(cls, r: TrialRecord) -> "Trial":
        return cls(r.number, r.kind, r.name, Config.from_dict(r.config), r.values or {}, r.details)


class Study:
    def __init__(self, directory: Path, storage: SQLiteStorage, settings: StudySettings) -> None:
        self.directory = directory
        self.storage = storage
        self.settings = settings

    @classmethod
    def open(cls, directory: str | Path, settings: StudySettings | None = None, resume: bool = False) -> "Study":
        """A new study in ``directory``, or (``resume``, or ``settings`` None) the one already there."""
        directory = Path(directory)
        db = directory / DB_NAME
        if (settings is None or resume) and not db.exists():
            raise StudyError(f"{directory}: no study here ({DB_NAME} missing)")
        storage = SQLiteStorage(db)
        stored = storage.get("settings")
        if stored is not None and settings is not None and not resume:
            storage.close()
            raise StudyError(f"{directory}: a study already exists; pass --resume to continue it "
                             "or choose another directory")
        if stored is None:
            if settings is None:
                raise StudyError(f"{db}: the study has no settings")
            storage.put("settings", settings.to_dict())
            storage.put("created", time.time())
            stored = settings.to_dict()
        return cls(directory, storage, StudySettings.from_dict(stored))

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.settings.objectives

    def corpus(self) -> Corpus:
        """The study's corpus, refused if it changed since the study began (see :meth:`check_corpus`)."""
        corpus = self.settings.load_corpus()
        self.check_corpus(corpus)
        return corpus

    def check_corpus(self, corpus: Corpus) -> None:
        """Trials measured on two versions of a corpus do not belong on one Pareto front: the first
        corpus a study runs on is recorded (its content hash), and any other is refused. A sample of a
        corpus (the profiling sample) stands for the corpus it was drawn from. A corpus loaded by another
        label column or least class size than the study's is refused too: recorded first, it would score
        every trial on another task."""
        st = self.settings
        if (corpus.label_column, corpus.min_class_size) != (st.label_column, st.min_class_size):
            raise StudyError(f"{corpus.root}: loaded with label column '{corpus.label_column}' and classes of at "
                             f"least {corpus.min_class_size} row(s), but the study in {self.directory} classifies by "
                             f"'{st.label_column}' (at least {st.min_class_size}): load it with the study's "
                             "settings (study.settings.load_corpus())")
        recorded = self.storage.get("corpus_hash")
        current = corpus.sample_of or corpus.content_hash()
        if recorded is None:
            self.storage.put("corpus_hash", current)
        elif recorded != current:
            raise StudyError(f"{self.settings.corpus}: its labels or captures changed since the study in "
                             f"{self.directory} began; its trials would mix two datasets: start a new study")

    def trials(self, kind: str | None = None) -> list[Trial]:
        return [Trial.from_record(r) for r in self.storage.trials(kind, TrialState.COMPLETE)]

    def measured(self) -> list[Trial]:
        """Every configuration the study evaluated and completed: its search trials (initial design
        included) and its baselines."""
        return self.trials("search") + self.trials("baseline")

    def pareto(self, kind: str | None = None) -> list[Trial]:
        """The non-dominated trials of ``kind`` ("search", "baseline"), or of everything measured: what
        the study recommends never falls short of a configuration it evaluated."""
        trials = self.trials(kind) if kind else self.measured()
        if not trials:
            return []
        y = to_max_space([t.values for t in trials], self.objectives)
        mask = pareto_mask(y)
        front = [t for t, m in zip(trials, mask) if m]
        return sorted(front, key=lambda t: -t.values["f1"])

    # steps of a run ------------------------------------------------------------------------------
    def cv_dataset(self, dataset: Dataset) -> Dataset:
        """What cross-validation runs on: the dataset, or past ``cv_sample`` connections a stratified
        sample of it (drawn with the study's seed, so a resumed study draws the same)."""
        return dataset.sample(self.settings.cv_sample, self.settings.seed)

    def profile_corpus(self, corpus: Corpus) -> Corpus:
        """What costs are measured on: the corpus, or past ``profile_sample_mb`` whole captures drawn at
        random (recorded in the study)."""
        sample = corpus.sample_captures(round(self.settings.profile_sample_mb * 2**20), self.settings.seed)
        if sample is not corpus and self.storage.get("profile_sample") is None:
            size = lambda c: sum(c.path_of(p).stat().st_size for p in c.captures)  # noqa: E731
            self.storage.put("profile_sample", {"captures": len(sample.captures), "of": len(corpus.captures),
                                                "bytes": size(sample), "of_bytes": size(corpus),
                                                "seed": self.settings.seed})
        return sample

    def evaluator(self, corpus: Corpus, dataset: Dataset) -> Evaluator:
        """The evaluator of this study's settings (folds, seeds, objectives, ZAM), on the cross-validation
        sample of ``dataset`` and the profiling sample of ``corpus``."""
        st = self.settings
        return Evaluator(self.profile_corpus(corpus), self.cv_dataset(dataset), st.objectives, st.folds, st.seed,
                         zam=st.zam, model_seeds=st.model_seeds, engine=st.engine, deployment=st.deployment,
                         profile_repeat=st.profile_repeat)

    def sample_check(self, dataset: Dataset, sample: Dataset, importance: dict,
                     progress: Callable[[str], None]) -> dict | None:
        """How far F1 on the cross-validation sample lies from F1 on the whole corpus, measured once per
        study: one configuration (the ten features mutual information ranks first, at depth 10, a forest)
        cross-validated on the whole corpus and on ``SAMPLE_CHECK_DRAWS`` samples drawn with other seeds: a
        one-off cost that grows with the corpus (a 10-tree forest on 10 features of every connection).
        ``bound`` is the largest gap seen. None when there is no sample."""
        if sample.sampling is None:
            return None
        stored = self.storage.get("sampling")
        if stored is not None:
            return stored
        progress(f"checking the {sample.connections}-connection sample against all {dataset.connections}")
        st = self.settings
        feats = top_k(importance["features"], importance["mi"], BASELINE_K)
        depth = min(10, st.max_depth)

        def f1(ds: Dataset) -> float:
            folds = grouped_folds(ds.y, ds.groups, st.folds, st.seed)
            return cross_val_f1(ds.matrix(feats, depth), ds.y, folds, SAMPLE_CHECK_MODEL, st.seed)["f1"]

        t0 = time.perf_counter()
        full = f1(dataset)
        full_s = time.perf_counter() - t0
        draws = [f1(dataset.sample(st.cv_sample, st.seed + k)) for k in range(SAMPLE_CHECK_DRAWS)]
        result = {**sample.sampling, "reference": f"mi{BASELINE_K}@{depth} {SAMPLE_CHECK_MODEL}",
                  "f1_full": full, "f1_samples": draws, "bound": max(abs(d - full) for d in draws),
                  "full_cv_s": full_s}
        self.storage.put("sampling", result)
        return result

    def importance(self, dataset: Dataset, progress: Callable[[str], None]) -> dict:
        """MI and RFE ranks at full depth, computed once per study."""
        stored = self.storage.get("importance")
        if stored is not None:
            return stored
        # A study restricted to some features ranks (and takes its baselines from) those only; the
        # native engine computes no analyzer feature: its studies leave them out.
        allowed = set(self.settings.features or dataset.features)
        features = [f for f in dataset.features if f in allowed
                    and (self.settings.engine != "native" or FEATURES_BY_NAME[f].analyzer_field is None)]
        if not features:
            analyzed = sorted(f for f in allowed if FEATURES_BY_NAME[f].analyzer_field is not None)
            raise StudyError("none of the study's features can be searched here" + (
                f": {', '.join(analyzed[:5])} come from Zeek's analyzers, which the {self.settings.deployment} "
                f"deployment does not run or the {self.settings.engine} engine does not compute "
                "(use --deployment default and the script engine)" if analyzed else ""))
        x = dataset.matrix(features, dataset.max_depth)
        progress("mutual information")
        mi = mutual_information(x, dataset.y, self.settings.seed)
        progress("recursive feature elimination")
        rfe = rfe_ranking(x, dataset.y, self.settings.seed)
        result = {"features": features, "mi": [float(v) for v in mi], "rfe_rank": [int(r) for r in rfe]}
        self.storage.put("importance", result)
        return result

    def space(self, importance: dict, dataset: Dataset | None = None) -> SearchSpace:
        """The features that carry information, every depth, the model families and, when the study
        searches it, the deadline from a millisecond to the dataset's span (beyond it none binds)."""
        feats, mi = importance["features"], importance["mi"]
        allowed = set(self.settings.features) if self.settings.features else set(feats)
        keep = tuple(f for f, v in zip(feats, mi) if v > MI_EPSILON and f in allowed)
        if not keep:
            raise StudyError("no feature carries information about the labels")
        deadlines = None
        if self.settings.deadline_search and dataset is not None and dataset.span_s > 2 * MIN_DEADLINE_S:
            deadlines = (MIN_DEADLINE_S, dataset.span_s)
        return SearchSpace(keep, self.settings.max_depth, tuple(self.settings.families), deadlines=deadlines)

    def baseline_configs(self, importance: dict) -> dict[str, Config]:
        feats, mi, rfe = importance["features"], importance["mi"], importance["rfe_rank"]
        selections = {"all": feats, f"mi{BASELINE_K}": top_k(feats, mi, BASELINE_K),
                      f"rfe{BASELINE_K}": top_k(feats, rfe, BASELINE_K, higher_is_better=False)}
        depths = sorted({10, 50, self.settings.max_depth} & set(range(1, self.settings.max_depth + 1)))
        order = {f: i for i, f in enumerate(feats)}
        return {f"{name}@{d}": Config(tuple(sorted(sel, key=order.get)), d, BASELINE_MODEL)
                for name, sel in selections.items() for d in depths}

    def _evaluate(self, kind: str, config: Config, evaluator: Evaluator, name: str | None = None,
                  extra: dict | None = None, progress: Callable[[str], None] | None = None) -> Trial | None:
        number = self.storage.start_trial(kind, config.to_dict(), name)
        outcome = evaluate_trial(evaluator, config, progress)
        self._finish(number, outcome, extra or {})
        if outcome.error is not None:
            return None
        return Trial(number, kind, name, config, outcome.values, {**outcome.details, **(extra or {})})

    def _finish(self, number: int, outcome: Outcome, extra: dict) -> None:
        """Record what a trial's evaluation (``cato.executors.evaluate_trial``, here or in a task) returned:
        its values, or its error as a failed trial."""
        if outcome.error is not None:
            self.storage.finish_trial(number, None, {**outcome.details, "error": outcome.error,
                                                     "traceback": outcome.traceback, **extra}, TrialState.FAILED)
        else:
            self.storage.finish_trial(number, outcome.values, {**outcome.details, **extra})

    def take_interrupted(self) -> list[TrialRecord]:
        """Trials left running by a killed process: marked failed, to be evaluated again."""
        stale = self.storage.trials(state=TrialState.RUNNING)
        for r in stale:
            self.storage.finish_trial(r.number, None, {"error": "interrupted"}, TrialState.FAILED)
        return stale


def search_context(study: Study, importance: dict, space: SearchSpace) -> SearchContext:
    """What the study's sampler starts from: its rankings, ALL@max's F1 and every baseline measured."""
    feats = importance["features"]
    all_at_max = {t.name: t for t in study.trials("baseline")}.get(f"all@{study.settings.max_depth}")
    return SearchContext(
        space, study.objectives, study.settings.seed,
        mi=[importance["mi"][feats.index(f)] for f in space.features],
        rfe_rank=[importance["rfe_rank"][feats.index(f)] for f in space.features],
        use_prior=study.settings.use_prior, n_initial=study.settings.initial,
        reference_f1=all_at_max.values["f1"] if all_at_max else None,
        measured=tuple(_in_space(space, t) for t in study.trials("baseline")
                       if set(t.config.features) & set(space.features)),
        f1_noise=f1_noise(t.details.get("f1_seeds", ()) for t in study.trials("baseline")))


def run_study(study: Study, dataset: Dataset, evaluator: Evaluator, budget: int,
              progress: Callable[[str, int, int, list[Trial]], None] | None = None,
              executor: Executor | None = None) -> Study:
    """Evaluate the baselines, then search trials until ``budget`` of them are complete. ``dataset`` is
    the whole corpus's; the evaluator's may be a sample of it (then checked against it once).

    With ``executor`` (Ray tasks: ``cato.executors``), the baselines and the search trials are evaluated
    there, up to ``executor.slots`` at once (see :func:`_search_in_parallel`); the steps before them
    (importance, the sample check) run here as without it."""
    study.check_corpus(evaluator.corpus)
    report = progress or (lambda *_a: None)
    note = lambda msg: report(msg, len(study.trials("search")), budget, study.pareto())  # noqa: E731
    sample = evaluator.dataset
    importance = study.importance(sample, note)
    study.sample_check(dataset, sample, importance, note)
    space = study.space(importance, sample)
    study.storage.put("space", list(space.features))
    stale = study.take_interrupted()

    shared = executor.put(evaluator) if executor is not None else None  # the dataset and corpus, sent once
    if study.settings.baselines:
        done = {t.name for t in study.trials("baseline")}
        todo = {name: config for name, config in study.baseline_configs(importance).items() if name not in done}
        if executor is not None:
            _baselines_in_parallel(study, todo, shared, executor, note)
        else:
            for name, config in todo.items():
                note(f"baseline {name}")
                study._evaluate("baseline", config, evaluator, name,
                                progress=lambda m, n=name: note(f"baseline {n}: {m}"))

    sampler = make_sampler(study.settings.sampler, search_context(study, importance, space),
                           **study.settings.sampler_params)

    retry = [Config.from_dict(r.config) for r in stale if r.kind == "search"]
    if executor is not None:
        _search_in_parallel(study, shared, sampler, budget, retry, executor, note)
        return study
    while True:
        history = study.trials("search")
        n = len(history)
        if n >= budget:
            break
        if retry:
            config, info = retry.pop(0), {"source": "resumed (interrupted trial)"}
        else:
            note(f"trial {n + 1}: proposing")
            # Numbered by every search trial started, so a failed one is not proposed again.
            config, info = sampler.ask([(t.config, t.values) for t in history], len(study.storage.trials("search")))
        study._evaluate("search", config, evaluator, extra={**info, "sampler": sampler.name, "index": n},
                        progress=lambda m, i=n: note(f"trial {i + 1}: {m}"))
        failed = len(study.storage.trials("search", TrialState.FAILED))
        if failed > max(10, budget):
            raise StudyError(f"{failed} trials failed; see `cato report {study.directory}`")
    return study


def _outcome(result: Callable[[], Outcome]) -> Outcome:
    """A task's outcome; a task whose process died on every attempt (Ray gave up) is a failed one."""
    try:
        return result()
    except Exception as e:  # noqa: BLE001
        return Outcome(None, {}, f"{type(e).__name__}: {e}", traceback.format_exc())


def _baselines_in_parallel(study: Study, configs: dict[str, Config], shared, executor: Executor,
                           note: Callable[[str], None]) -> None:
    """The baselines ``configs`` (by name) on ``executor``, ``executor.slots`` at a time, their rows
    started in order (numbered as in-process)."""
    queue, running = list(configs.items()), {}
    while queue or running:
        while queue and len(running) < executor.slots:
            name, config = queue.pop(0)
            note(f"baseline {name}")
            number = study.storage.start_trial("baseline", config.to_dict(), name)
            running[executor.submit(evaluate_trial, shared, config)] = number
        done, result = executor.wait(list(running))
        study._finish(running.pop(done), _outcome(result), {})


def _search_in_parallel(study: Study, shared, sampler, budget: int, retry: list[Config],
                        executor: Executor, note: Callable[[str], None]) -> None:
    """Search trials on ``executor``, ``executor.slots`` at a time: whenever one finishes, the sampler is
    asked for the next while the others run (they are its ``pending`` configurations). This process
    alone writes the study: it starts each trial's row when it submits it and finishes it when its
    outcome arrives, once. A task whose process dies is run again by the executor (Ray's retries), under
    the same row; one that dies every time is a failed trial. With one slot, the trials, their order and
    their configurations are those of the sequential loop in :func:`run_study`. ``shared``: the evaluator,
    as ``executor.put`` made it."""
    running: dict = {}  # handle -> (trial number, config, extra)
    while True:
        complete = len(study.trials("search"))
        while len(running) < executor.slots and complete + len(running) < budget:
            history = study.trials("search")
            if retry:
                config, info = retry.pop(0), {"source": "resumed (interrupted trial)"}
            else:
                note(f"trial {complete + len(running) + 1}: proposing")
                pending = [c for _, c, _ in running.values()]
                config, info = sampler.ask([(t.config, t.values) for t in history],
                                           len(study.storage.trials("search")), pending)
            extra = {**info, "sampler": sampler.name, "index": complete}
            number = study.storage.start_trial("search", config.to_dict(), None)
            running[executor.submit(evaluate_trial, shared, config)] = (number, config, extra)
            note(f"trial {complete + len(running)}: {len(running)} running")
        if not running:
            return
        done, result = executor.wait(list(running))
        number, config, extra = running.pop(done)
        study._finish(number, _outcome(result), extra)
        failed = len(study.storage.trials("search", TrialState.FAILED))
        if failed > max(10, budget):
            raise StudyError(f"{failed} trials failed; see `cato report {study.directory}`")


def _in_space(space: SearchSpace, trial: Trial) -> tuple[Config, dict]:
    """A baseline as a point of the search space: its features that carry no information (outside the
    space) left out, its measured values kept."""
    c = trial.config
    return space.config([f for f in c.features if f in space.features], c.depth, c.model, c.deadline), trial.values


def load_study(directory: str | Path) -> Study:
    return Study.open(directory)


def best_within(trials: Sequence[Trial], f1: float, tolerance: float = F1_TOLERANCE) -> Trial | None:
    """The cheapest trial whose F1 is within ``tolerance`` of ``f1``: least cost with one cost objective,
    least product of costs with two (each cost floored at COST_FLOOR, as the hypervolume does). Ties,
    common among scripts at the CPU floor, go to the lower recorded time-to-decision, then the higher F1."""
    ok = [t for t in trials if t.values["f1"] >= f1 - tolerance]
    if not ok:
        return None
    costs = [k for k in ok[0].values if k != "f1"]
    return min(ok, key=lambda t: (sum(math.log(max(t.values[c], COST_FLOOR)) for c in costs),
                                  t.details.get("latency_ms", 0.0), -t.values["f1"]))
