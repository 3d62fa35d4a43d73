"""The ``cato`` command line. Each command parses, calls the public API and formats the result."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cato import __version__
from cato.codegen import ENGINES, STRATEGIES, GeneratorError, generate, normalize_depths, parse_deadline
from cato.features import CATALOG, UnknownFeatureError, catalog_hash, resolve

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="cato: cost-aware ML traffic features, computed natively in Zeek.")
def _console(stderr: bool = False) -> Console:
    """A console as wide as the terminal; off a terminal (a file, a pipe, CI), wide enough that tables
    are not cut at rich's 80 columns (COLUMNS still decides where it is set)."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=200 if wide else None)


err = _console(stderr=True)


class _PlainProgress:
    """Progress as plain lines, for a log file or a pipe: a line when a task starts, ends, changes what it
    says, or every ``every_s`` seconds, with its count, elapsed time and an estimate of what remains."""

    def __init__(self, name: str, console: Console, every_s: float = 10.0) -> None:
        self.name, self.console, self.every_s = name, console, every_s
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> "_PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        for task_id, t in self.tasks.items():
            if t["visible"] and t["printed"] != (t["completed"], t["description"]):
                self._line(task_id)

    def add_task(self, description: str, total: float | None = None, completed: float = 0,
                 visible: bool = True) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = {"description": description, "total": total, "completed": completed,
                               "start": time.monotonic(), "start_count": completed, "last": 0.0, "printed": None,
                               "visible": visible}
        if visible:
            self._line(task_id)
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, completed: float | None = None, advance: float = 0,
               description: str | None = None, visible: bool | None = None, total: float | None = None) -> None:
        t = self.tasks[task_id]
        changed = description is not None and description != t["description"]
        t["description"] = description if description is not None else t["description"]
        t["completed"] = (completed if completed is not None else t["completed"]) + advance
        t["total"] = total if total is not None else t["total"]
        if visible is not None:
            t["visible"] = visible
        done = t["total"] is not None and t["completed"] >= t["total"]
        if t["visible"] and (changed or done or time.monotonic() - t["last"] >= self.every_s) and \
                t["printed"] != (t["completed"], t["description"]):
            self._line(task_id)

    def _line(self, task_id: int) -> None:
        t = self.tasks[task_id]
        now = time.monotonic()
        elapsed = now - t["start"]
        text = f"{self.name}: {t['description']} {t['completed']:g}" + (f"/{t['total']:g}" if t["total"] else "")
        text += f", {elapsed:.0f} s"
        rate = (t["completed"] - t["start_count"]) / elapsed if elapsed > 0 else 0
        if t["total"] and rate > 0 and t["completed"] < t["total"]:
            text += f", about {(t['total'] - t['completed']) / rate:.0f} s to go"
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        t["last"], t["printed"] = now, (t["completed"], t["description"])


def _progress(name: str, unit: str = "{task.description}", transient: bool = False):
    """A progress display for a long stage: a bar with an ETA on a terminal, plain lines elsewhere."""
    if not err.is_terminal:
        return _PlainProgress(name, err)
    return Progress(TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=transient)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _depths(depth: Optional[int], depths: Optional[str]) -> tuple[int, ...]:
    if depth is not None and depths:
        _fail("give --depth or --depths, not both")
    try:
        if depths:
            return normalize_depths([int(x) for x in depths.split(",") if x.strip()])
        return normalize_depths(depth if depth is not None else 10)
    except ValueError as e:
        _fail(f"bad depth: {e}")
    raise AssertionError


DEADLINE_HELP = ("Decide at the latest this long after a connection's first packet (e.g. 250ms, 1.5s), with "
                 "what was seen by then.")


def _deadline(text: Optional[str]) -> Optional[float]:
    try:
        return parse_deadline(text) if text else None
    except GeneratorError as e:
        _fail(str(e))
    raise AssertionError


MIN_CLASS_HELP = ("Leave out classes with fewer labelled rows than this (connections, or captures when labels.csv "
                  "labels whole captures); each left-out class is named.")
ENGINE_HELP = (f"What computes the features: {' or '.join(ENGINES)} (cato's Zeek plugin, built by `make setup` "
               "or `zkg install`).")
#: What extraction, profiles and studies assume Zeek runs besides cato: what a Zeek installation runs.
DEFAULT_DEPLOYMENT = "default"
DEPLOYMENT_HELP = ("What Zeek runs before cato, as the deployment will: bare (zeek -b), default (Zeek's default "
                   "scripts and local.zeek, as zeekctl runs it), or the path of the site's own local.zeek. Its "
                   "analyzers change what cato sees (roles flipped, DNS sessions splitting mDNS flows): train on "
                   "what the deployment runs.")
RAY_HELP = ("Run on Ray (pip install 'cato\\[ray]'): local (a Ray instance started here), auto (the cluster this "
            "machine belongs to), or host:port of a cluster's head. Every node needs Zeek and cato, and the corpus "
            "and the cache ($CATO_CACHE) at the same paths.")


def _deployment(deployment: str) -> str:
    """A deployment's name, or its script's absolute path (a study records it, and runs anywhere)."""
    from cato.zeek import DEPLOYMENTS, deployment_invocation
    try:
        deployment_invocation(deployment)
    except ValueError as e:
        _fail(f"--deployment: {e}")
    return deployment if deployment in DEPLOYMENTS else str(Path(deployment).resolve())


def _engine(engine: str) -> str:
    if engine not in ENGINES:
        _fail(f"--engine takes one of {', '.join(ENGINES)}")
    return engine


def _ray(address: Optional[str]):
    """The Ray connection ``--ray`` asks for (None without it); fails with the fix when Ray is missing."""
    if address is None:
        return None
    from cato.executors import ExecutorError, connect
    try:
        return connect(address)
    except ExecutorError as e:
        from rich.markup import escape
        _fail(escape(str(e)))


def _features(selection: str):
    try:
        return resolve(selection)
    except UnknownFeatureError as e:
        _fail(str(e))


@app.command()
def features(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    group: Optional[str] = typer.Option(None, help="Only this group."),
) -> None:
    """Print the feature catalog."""
    feats = [f for f in CATALOG if group is None or f.group == group]
    if as_json:
        json.dump({"catalog_hash": catalog_hash(), "count": len(feats), "features": [f.to_dict() for f in feats]},
                  sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    table = Table(title=f"cato feature catalog ({len(feats)} features)")
    for col in ("name", "group", "type", "dir", "needs", "description", "analyzer", "known"):
        table.add_column(col)
    for f in feats:
        source = f.analyzer_field
        table.add_row(f.name, f.group, f.dtype, f.direction, ",".join(f.needs), f.description,
                      source.analyzer if source else "", source.known if source else "")
    _console().print(table)


@app.command(name="generate")
def generate_cmd(
    features_: str = typer.Option(..., "--features", "-f", help="Comma-separated names, group:NAME, or 'all'."),
    depth: Optional[int] = typer.Option(None, "--depth", "-n", help="Packet depth N (default 10)."),
    depths: Optional[str] = typer.Option(None, "--depths", help="Several depths in one pass, e.g. 1,2,5,10."),
    strategy: str = typer.Option("auto", help=f"Extraction strategy: {', '.join(STRATEGIES)}."),
    deadline: Optional[str] = typer.Option(None, "--deadline", help=DEADLINE_HELP),
    engine: str = typer.Option("script", "--engine", help=ENGINE_HELP),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write here instead of stdout."),
) -> None:
    """Write the Zeek script computing the selected features from each connection's first packets."""
    feats = _features(features_)
    try:
        script = generate(feats, _depths(depth, depths), strategy, _deadline(deadline), _engine(engine))
    except GeneratorError as e:
        _fail(str(e))
    if output:
        output.write_text(script.text)
        err.print(f"wrote {output} ({len(feats)} features, depths {','.join(map(str, script.depths))}, "
                  f"strategy {script.strategy}); run it as is: zeek -r CAPTURE {output}"
                  + (" (with cato's plugin on ZEEK_PLUGIN_PATH)" if script.engine == "native" else ""))
    else:
        sys.stdout.write(script.text)


@app.command()
def extract(
    corpus: Path = typer.Argument(..., help="Corpus folder (labels.csv and captures)."),
    features_: str = typer.Option("all", "--features", "-f", help="Comma-separated names, group:NAME, or 'all'."),
    depth: Optional[int] = typer.Option(None, "--depth", "-n", help="Packet depth N (default 10)."),
    depths: Optional[str] = typer.Option(None, "--depths", help="Several depths in one pass, e.g. 1,2,5,10."),
    output: Path = typer.Option(..., "-o", "--output", help="Output table (.parquet or .csv)."),
    label_column: str = typer.Option("label", help="labels.csv column to use as the label."),
    min_class_size: int = typer.Option(1, "--min-class-size", min=1, help=MIN_CLASS_HELP),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel Zeek processes (default: cores)."),
    strategy: str = typer.Option("auto", help=f"Extraction strategy: {', '.join(STRATEGIES)}."),
    deadline: Optional[str] = typer.Option(None, "--deadline", help=DEADLINE_HELP),
    engine: str = typer.Option("script", "--engine", help=ENGINE_HELP),
    deployment: str = typer.Option(DEFAULT_DEPLOYMENT, "--deployment", help=DEPLOYMENT_HELP),
    ray_address: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP + " Each batch of "
                                              "captures is a Ray task of one CPU (--jobs does not apply)."),
) -> None:
    """Run Zeek over every capture of a corpus and write one row per labelled connection and depth."""
    from cato.corpus import CorpusError, load_corpus
    from cato.dataset.extract import extract_to_file
    from cato.zeek import ZeekError, ZeekNotFoundError

    feats = _features(features_)
    depth_list = _depths(depth, depths)
    ray_context = _ray(ray_address)
    try:
        corp = load_corpus(corpus, label_column, min_class_size)
    except CorpusError as e:
        _fail(str(e))
    for p in corp.problems:
        err.print(f"[yellow]warning:[/] {p}")
    n = len(corp.captures)
    with _progress("extract", "captures") as bar:
        task = bar.add_task("captures", total=n)
        try:
            from cato.executors import RayExecutor
            result, parts = extract_to_file(corp, feats, depth_list, output, strategy=strategy,
                                            deadline=_deadline(deadline), jobs=jobs,
                                            progress=lambda k: bar.advance(task, k), engine=_engine(engine),
                                            executor=RayExecutor(ray_context) if ray_context else None,
                                            deployment=_deployment(deployment))
        except (ZeekNotFoundError, ZeekError, GeneratorError) as e:
            _fail(str(e))
        finally:
            if ray_context:
                ray_context.close()
    for p in result.problems:
        err.print(f"[yellow]{'skipped' if p.skipped else 'warning'}:[/] {p.capture}: {p.reason}")
    rows, conns = sum(p.rows for p in parts), sum(p.connections for p in parts)
    labels = {label for p in parts for label in p.labels}
    err.print(f"wrote {output}: {rows} rows ({conns} labelled connections "
              f"× {len(depth_list)} depth(s)), {len(labels)} labels, "
              f"{len(feats)} features, strategy {result.script.strategy}; "
              f"{n - len(result.skipped)}/{n} captures read, Zeek CPU {result.zeek_cpu_s:.1f}s "
              f"in {result.zeek_runs} run(s)")


@app.command(name="profile")
def profile_cmd(
    corpus: Path = typer.Argument(..., help="Corpus folder (labels.csv and captures)."),
    features_: str = typer.Option("all", "--features", "-f", help="Comma-separated names, group:NAME, or 'all'."),
    depth: Optional[int] = typer.Option(None, "--depth", "-n", help="Packet depth N (default 10)."),
    depths: Optional[str] = typer.Option(None, "--depths", help="Several depths in one pass."),
    deployment: str = typer.Option(DEFAULT_DEPLOYMENT, "--deployment", "--baseline", help=DEPLOYMENT_HELP + " The "
                                   "script's cost is its marginal cost over it (the baseline run)."),
    repeat: int = typer.Option(5, "--repeat", "-k", min=1,
                               help="Rounds per configuration (a baseline run, then a script run)."),
    strategy: str = typer.Option("auto", help=f"Extraction strategy: {', '.join(STRATEGIES)}."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Measure again even if cached."),
    model: Optional[Path] = typer.Option(None, "--model", help="ONNX model: also time its inference per vector."),
    zam: bool = typer.Option(False, "--zam", help="Run Zeek (baseline too) with -O ZAM script optimization."),
    deadline: Optional[str] = typer.Option(None, "--deadline", help=DEADLINE_HELP),
    engine: str = typer.Option("script", "--engine", help=ENGINE_HELP),
) -> None:
    """Measure what a generated script costs in Zeek over a corpus (CPU, memory, time-to-decision)."""
    from cato.corpus import CorpusError, load_corpus
    from cato.model.onnx import ModelError, OnnxModel
    from cato.zeek import ZeekError, ZeekNotFoundError
    from cato.zeek.profiling import ProfileError, profile

    feats = _features(features_)
    try:
        script = generate(feats, _depths(depth, depths), strategy, _deadline(deadline), _engine(engine))
        corp = load_corpus(corpus)
        onnx_model = OnnxModel.load(model) if model is not None else None
        if onnx_model is not None:
            onnx_model.check_features(script.columns)
    except (GeneratorError, CorpusError, ModelError) as e:
        _fail(str(e))
    steps = 2 * repeat + 2 + (model is not None)
    with _progress("profile", transient=as_json) as bar:
        task = bar.add_task("", total=steps)

        def step(msg: str) -> None:
            bar.update(task, description=msg, advance=1)

        try:
            result = profile(corp, script, baseline=_deployment(deployment), repeat=repeat, use_cache=not no_cache,
                             inference=onnx_model, progress=step, zam=zam)
        except (ProfileError, ModelError, ZeekNotFoundError, ZeekError) as e:
            _fail(str(e))
        bar.update(task, completed=steps, description="cached" if result.cached else "done")
    for name, why in result.left_out.items():
        err.print(f"[yellow]left out:[/] {name}: {why}")
    if as_json:
        json.dump(result.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    r = result
    table = Table(title=f"{len(r.features)} feature(s) @ depth {','.join(map(str, r.depths))} ({r.strategy}), "
                        f"baseline {r.baseline}" + (", -O ZAM" if r.zam else "") + (" [cached]" if r.cached else ""))
    table.add_column("figure")
    table.add_column("with script", justify="right")
    table.add_column("baseline", justify="right")
    table.add_row("Zeek CPU s (median; spread)", f"{r.cpu_s:.3f} ({_spread_txt(r.cpu_s_runs)})",
                  f"{r.baseline_cpu_s:.3f} ({_spread_txt(r.baseline_cpu_s_runs)})")
    table.add_row("CPU ratio (median of rounds, each against its own baseline run; spread)",
                  f"{r.cpu_ratio:.2f}x ({min(r.cpu_ratio_runs):.2f}-{max(r.cpu_ratio_runs):.2f})", "1.00x")
    table.add_row("peak RSS MB", f"{r.peak_rss_mb:.1f}", f"{r.baseline_peak_rss_mb:.1f}")
    table.add_row("packets / CPU s", f"{r.pkts_per_cpu_s:,.0f}", f"{r.baseline_pkts_per_cpu_s:,.0f}")
    table.add_row("connections / CPU s", f"{r.conns_per_cpu_s:,.0f}", f"{r.baseline_conns_per_cpu_s:,.0f}")
    table.add_row("steady-state CPU µs / connection (less start-ups)", f"{r.steady_cpu_us_per_conn:.2f}",
                  f"{r.baseline_steady_cpu_us_per_conn:.2f}")
    table.add_row("marginal CPU µs / connection", f"{r.marginal_cpu_us_per_conn:.2f}", "")
    table.add_row("script CPU µs / connection (profiler, calibrated)", f"{r.script_cpu_us_per_conn:.2f}", "")
    table.add_row("time-to-decision ms p50 / p95",
                  f"{r.time_to_decision_ms['p50']:.1f} / {r.time_to_decision_ms['p95']:.1f}", "")
    if r.inference_ms:
        table.add_row("ONNX inference ms per vector p50 / p95",
                      f"{r.inference_ms['p50']:.3f} / {r.inference_ms['p95']:.3f}", "")
    _console().print(table)
    _console().print(f"{r.connections} connections, {r.packets} packets, {r.streams} Zeek run(s) of "
                    f"{r.startup_cpu_s:.3f} s start-up each; profiler slow-down {r.profiler_slowdown:.1f}x")


@app.command()
def tune(
    corpus: Path = typer.Argument(..., help="Corpus folder (labels.csv and captures)."),
    study_dir: Path = typer.Option(..., "--study", help="Study directory (created; its study.db holds every trial)."),
    budget: int = typer.Option(50, "--budget", "-b", min=1, help="Search trials to complete."),
    objectives: str = typer.Option("f1,cpu", help="f1 plus cpu (Zeek CPU per connection) and/or latency "
                                   "(time-to-decision)."),
    cost: Optional[str] = typer.Option(None, "--cost", help="Shorthand: --cost latency means --objectives f1,latency."),
    max_depth: int = typer.Option(50, "--max-depth", min=1, help="Largest packet depth searched."),
    seed: int = typer.Option(0, "--seed", help="Seed of folds, models and sampler."),
    sampler: str = typer.Option("botorch", help="botorch (cato's search), tpe (Optuna) or random."),
    sampler_param: list[str] = typer.Option([], "--sampler-param", metavar="NAME=VALUE",
                                            help="A tuning parameter of the sampler, e.g. depth_sweep=false "
                                            "(repeatable; docs/search.md lists them)."),
    models: str = typer.Option("dt,rf,gbt", "--models", help="Model families searched."),
    folds: int = typer.Option(5, "--folds", min=2, help="Cross-validation folds (grouped by the corpus group)."),
    features_: Optional[str] = typer.Option(None, "--features", "-f", help="Search only these features."),
    initial: int = typer.Option(10, "--initial", min=1, help="Initial-design trials before Bayesian optimization."),
    no_prior: bool = typer.Option(False, "--no-prior", help="Turn the mutual-information prior off."),
    no_baselines: bool = typer.Option(False, "--no-baselines", help="Skip the ALL/MI/RFE baselines."),
    label_column: str = typer.Option("label", "--label-column", help="labels.csv column used as the class."),
    min_class_size: int = typer.Option(1, "--min-class-size", min=1, help=MIN_CLASS_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue the study in --study (its settings win)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel Zeek processes for the extraction."),
    zam: bool = typer.Option(False, "--zam", help="Measure costs with Zeek's -O ZAM script optimization."),
    engine: str = typer.Option("script", "--engine", help="The engine costs are measured with: the one the "
                               f"deployment will run ({' or '.join(ENGINES)})."),
    # Its default is cato.model.DEFAULT_MODEL_SEEDS, left unimported so that the CLI starts without numpy.
    model_seeds: Optional[int] = typer.Option(None, "--model-seeds", min=1, show_default=False,
                                              help="Seeds each random forest or decision tree is fitted with; "
                                              "F1 is their mean (default 3)."),
    deadline_search: Optional[bool] = typer.Option(None, "--deadline-search/--no-deadline-search",
                                                   show_default=False,
                                                   help="Also search the decision deadline (default: when latency "
                                                   "is an objective): vectors are made at the depth or T after "
                                                   "the first packet, whichever comes first."),
    cv_sample: int = typer.Option(20_000, "--cv-sample", min=0,
                                  help="Cross-validate on a stratified sample of about this many connections when "
                                  "the corpus is larger (0: every connection); checked once against the whole "
                                  "corpus (see cato report)."),
    deployment: str = typer.Option(DEFAULT_DEPLOYMENT, "--deployment",
                                   help=DEPLOYMENT_HELP + " A trial's cost is its marginal cost over it."),
    profile_sample_mb: float = typer.Option(64.0, "--profile-sample-mb", min=0,
                                            help="Measure costs on whole captures drawn at random up to this many "
                                            "MiB when the corpus is larger (0: the whole corpus)."),
    profile_repeat: int = typer.Option(1, "--profile-repeat", min=1,
                                       help="Zeek runs per cost measurement, their median taken (one run's CPU "
                                       "spreads by 10-15%; each run adds about a Zeek pass over the profiling "
                                       "sample to every trial)."),
    ray_address: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP + " Extraction "
                                              "batches and search trials are Ray tasks (one CPU each)."),
    ray_trials: Optional[int] = typer.Option(None, "--ray-trials", min=1, show_default=False,
                                             help="With --ray, search trials evaluated at once (default: the "
                                             "cluster's CPUs); the sampler proposes each next one knowing the "
                                             "others are running."),
) -> None:
    """Search feature subset x packet depth (x deadline) x model for the Pareto front of macro-F1 against
    measured cost."""
    from cato.cache import default_cache_dir
    from cato.corpus import CorpusError
    from cato.dataset import DatasetError, load_dataset
    from cato.model import FAMILIES
    from cato.search.objectives import ObjectiveError, parse_objectives
    from cato.search._fused_kernel import KernelLockError
    from cato.search.samplers import SAMPLERS, SamplerError, parse_sampler_params
    from cato.study import Study, StudyError, StudySettings, run_study
    from cato.zeek import ZeekError, ZeekNotFoundError

    if ray_trials is not None and ray_address is None:
        _fail("--ray-trials needs --ray")
    try:
        objs = parse_objectives(f"f1,{cost}" if cost else objectives)
    except ObjectiveError as e:
        _fail(str(e))
    families = tuple(m.strip() for m in models.split(",") if m.strip())
    if not families or any(f not in FAMILIES for f in families):
        _fail(f"--models takes a comma-separated subset of {','.join(FAMILIES)}")
    if sampler not in SAMPLERS:
        _fail(f"--sampler takes one of {', '.join(SAMPLERS)}")
    try:
        params = parse_sampler_params(sampler, sampler_param)
    except SamplerError as e:
        _fail(str(e))
    restrict = tuple(f.name for f in _features(features_)) if features_ else None
    settings = StudySettings(str(corpus.resolve()), label_column, objs, max_depth, seed, sampler, folds, families,
                             not no_prior, not no_baselines, initial, restrict, zam,
                             **({"model_seeds": model_seeds} if model_seeds else {}), engine=_engine(engine),
                             deadline_search="latency" in objs if deadline_search is None else deadline_search,
                             min_class_size=min_class_size, cv_sample=cv_sample,
                             profile_sample_mb=profile_sample_mb, profile_repeat=profile_repeat,
                             deployment=_deployment(deployment),
                             sampler_params=params)
    try:
        study = Study.open(study_dir, settings, resume=resume)
        if resume and Path(study.settings.corpus) != corpus.resolve():
            _fail(f"{study_dir}: this study was made on the corpus {study.settings.corpus}, not {corpus}")
        settings = study.settings
        corp = study.corpus()
    except (StudyError, CorpusError) as e:
        _fail(str(e))
    done = len(study.trials("search"))
    ray_context = _ray(ray_address)
    from cato.executors import RayExecutor
    with _progress("tune") as bar:
        extraction = bar.add_task(f"extracting depths 1..{settings.max_depth}", total=len(corp.captures))
        try:
            dataset = load_dataset(corp, settings.max_depth, default_cache_dir(), jobs=jobs,
                                   progress=lambda n: bar.advance(extraction, n),
                                   executor=RayExecutor(ray_context) if ray_context else None,
                                   deployment=settings.deployment)
            bar.update(extraction, completed=len(corp.captures), visible=False)
            for note in [*corp.problems, *dataset.problems]:
                err.print(note, style="yellow", markup=False, highlight=False)
            if len(dataset.classes) < 2:
                _fail(f"{settings.corpus}: its labelled connections all carry one label "
                      f"({', '.join(dataset.classes) or 'none'}): there is nothing to tell apart")
            evaluator = study.evaluator(corp, dataset)
            task = bar.add_task("", total=budget, completed=done)

            def show(msg: str, n: int, total: int, front: list) -> None:
                best = max((t.values["f1"] for t in front), default=float("nan"))
                bar.update(task, completed=n, description=f"{msg} | front {len(front)} pts, best F1 {best:.3f}")

            run_study(study, dataset, evaluator, budget, show,
                      executor=RayExecutor(ray_context, ray_trials) if ray_context else None)
            bar.update(task, completed=budget)
        except (DatasetError, StudyError, ZeekNotFoundError, ZeekError, KernelLockError) as e:
            _fail(str(e))
        finally:
            if ray_context:
                ray_context.close()
    front = study.pareto()
    _console().print(f"{len(study.trials('search'))} trials in {study_dir}; Pareto front of {len(front)} points. "
                    f"See: cato report {study_dir}")


@app.command()
def report(
    study_dir: Path = typer.Argument(..., help="Study directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    no_files: bool = typer.Option(False, "--no-files", help="Do not write pareto.png and report.html."),
) -> None:
    """Print a study's Pareto front and baselines; write pareto.png and report.html next to it."""
    from cato.study import StudyError, load_study
    from cato.study.report import render_console, study_report, write_files

    try:
        study = load_study(study_dir)
    except StudyError as e:
        _fail(str(e))
    data = study_report(study)
    if not no_files:
        write_files(study, data)
    if as_json:
        json.dump(data, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    render_console(data, _console())


@app.command(name="compile")
def compile_cmd(
    study_dir: Path = typer.Argument(..., help="Study directory (from cato tune)."),
    output: Path = typer.Option(..., "-o", "--output", help="Package directory to create."),
    trial: Optional[int] = typer.Option(None, "--trial", help="Trial number (see cato report)."),
    pick: Optional[str] = typer.Option(None, "--pick", help="most-accurate, or cheapest-within (see --within)."),
    within: float = typer.Option(0.01, "--within", help="F1 tolerance of --pick cheapest-within."),
    alert: list[str] = typer.Option([], "--alert", help="Label whose verdicts raise a Notice (repeatable)."),
    alert_min_score: float = typer.Option(0.5, "--alert-min-score", help="A verdict raises a Notice only at this "
                                          "score (the model's probability) or above (Cato::alert_min_score)."),
    deadline: Optional[str] = typer.Option(None, "--deadline", help=DEADLINE_HELP),
    engine: Optional[str] = typer.Option(None, "--engine", help="What computes the package's features: script, "
                                         "or native (the package then depends on cato's plugin); default: the "
                                         "engine the study measured its costs with."),
    name: Optional[str] = typer.Option(None, "--name", help="The model's name in verdicts, Notices and zkg "
                                       "(default: the study's folder and the point, e.g. iot-trial42)."),
    vector_form: Optional[str] = typer.Option(None, "--vector-form", help="How vectors travel to cato serve: "
                                              "compact (native engine only; its default) or records (the "
                                              "script engine's; Zeek's WebSocket JSON, readable by any client)."),
) -> None:
    """Write a zkg package of one study point: feature script, verdict script, ONNX model, manifest."""
    from cato.corpus import CorpusError
    from cato.dataset import DatasetError
    from cato.deploy.compile import CompileError, compile_package, pick_trial
    from cato.model import ModelError
    from cato.study import StudyError, load_study
    from cato.zeek import ZeekError, ZeekNotFoundError

    try:
        study = load_study(study_dir)
        chosen = pick_trial(study, trial, pick, within)
        err.print(f"trial {chosen.number}: {chosen.config} (F1 {chosen.values['f1']:.3f})")
        package = compile_package(study, chosen, output, alert_labels=alert, alert_min_score=alert_min_score,
                                  deadline=_deadline(deadline), name=name,
                                  engine=_engine(engine) if engine else None, vector_form=vector_form,
                                  progress=lambda m: err.print(m))
    except (StudyError, CompileError, CorpusError, DatasetError, ModelError, ZeekNotFoundError, ZeekError) as e:
        _fail(str(e))
    m = package.manifest
    _console().print(f"wrote {package.path}: {len(m.features)} features at depth {m.depth}, {len(m.labels)} labels, "
                    f"schema {m.schema}. Install: zkg install {package.path}")


@app.command()
def serve(
    package: Path = typer.Argument(..., help="Package directory (from cato compile)."),
    url: Optional[str] = typer.Option(None, "--url", help="Where Zeek listens (default ws://127.0.0.1:21760, "
                                      "or tcp://127.0.0.1:21761 with --transport broker); on a cluster, the "
                                      "manager (or Cato::listener_node)."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Where vectors come from, if the site redefined "
                                        "Cato::topic (default: the package's, from its manifest)."),
    verdict_topic: Optional[str] = typer.Option(None, "--verdict-topic", help="Where verdicts go, if the site "
                                                "redefined Cato::verdict_topic (default: the package's)."),
    zeek_nodes: Optional[list[str]] = typer.Option(None, "--zeek-node", help="Score only this cluster node's "
                                                   "vectors (repeatable): several workers share the nodes, "
                                                   "none scoring a vector twice. Default: every node's."),
    transport: str = typer.Option("websocket", "--transport", help="websocket (Zeek's WebSocket API v1) or "
                                  "broker (Broker's Python bindings, from zeek-config --python_dir)."),
    batch: int = typer.Option(256, "--batch", min=1, help="Vectors scored per ONNX Runtime call, at most."),
    max_wait: float = typer.Option(0.0, "--max-wait", min=0.0, help="ms a vector may wait for more to score with "
                                   "(Zeek batches already; 0: score what is queued)."),
    queue: int = typer.Option(100_000, "--queue", min=1, help="Vectors queued at most; past it they are dropped."),
    replay_capture: Optional[Path] = typer.Option(None, "--replay", help="Replay this capture through Zeek, "
                                                  "running what the package's deployment runs."),
    bare: bool = typer.Option(False, "--bare", help="With --replay: run zeek -b (the parity check: bare Zeek "
                              "sees the connections bare extraction sees)."),
    out: Optional[Path] = typer.Option(None, "--out", help="With --replay: where Zeek's logs go."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as one JSON object."),
    tls_ca: Optional[Path] = typer.Option(None, "--tls-ca", help="With a wss:// --url: trust the CA certificate "
                                          "(or self-signed certificate) in this PEM file for Zeek's listener."),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="With a wss:// --url: the client certificate "
                                            "(PEM) to present, where Zeek asks for one (Cato::websocket_tls_client_ca)."),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="The key of --tls-cert (PEM)."),
) -> None:
    """Run the ONNX inference worker of a package beside Zeek (or try it on a capture with --replay)."""
    import logging

    from cato.deploy.serve import DEFAULT_URL, ServeError, Worker, run_worker, tls_context

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if transport not in ("websocket", "broker"):
        _fail(f"--transport {transport}: websocket or broker")
    if transport == "broker" and replay_capture is not None:
        _fail("--replay talks to Zeek over its WebSocket API: leave --transport out")
    from cato.deploy.zeek_side import DEFAULT_BROKER_PORT
    url = url or (DEFAULT_URL if transport == "websocket" else f"tcp://127.0.0.1:{DEFAULT_BROKER_PORT}")
    try:
        if replay_capture is not None:
            from cato.deploy.replay import replay
            if out is None:
                _fail("--replay needs --out DIR for Zeek's logs")
            result = replay(package, replay_capture, out, batch=batch, max_wait_ms=max_wait, default_scripts=not bare)
            for note in result.notes:
                err.print(f"warning: {note}", style="yellow", markup=False, highlight=False)
            stats = result.stats
            summary = {**stats.to_dict(), "connections": result.connections, "answered": result.answered,
                       "verdicts": result.verdicts, "notices": result.notices, "out": str(result.out)}
            message = (f"{result.answered} of {result.connections} TCP/UDP connections in conn.log got a verdict "
                       f"({result.coverage:.1%}); {result.notices} notice(s); logs in {result.out}")
        else:
            context = tls_context(url, tls_ca, tls_cert, tls_key)
            from cato.deploy.links import Topics
            from cato.deploy.manifest import Manifest, ManifestError
            try:
                topics = Topics.of(Manifest.read(package), topic, verdict_topic)
            except ManifestError as e:
                _fail(str(e))
            worker = Worker(package, url, batch=batch, max_wait_ms=max_wait, queue_size=queue, ssl=context,
                            nodes=zeek_nodes or (), topics=topics)
            stats = run_worker(worker, on_signal=lambda st: err.print(st.summary()))
            summary, message = stats.to_dict(), ""
    except ServeError as e:
        _fail(str(e))
    if as_json:
        json.dump(summary, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    err.print(stats.summary())
    if message:
        _console().print(message)


def _spread_txt(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


@app.callback(invoke_without_command=True)
def main(version: bool = typer.Option(False, "--version", help="Print the version.")) -> None:
    if version:
        typer.echo(f"cato {__version__}")
        raise typer.Exit()


if __name__ == "__main__":
    app()
