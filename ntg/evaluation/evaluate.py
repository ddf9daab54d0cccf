"""``ntg evaluate``: judge a generator (or a file of synthetic flows) on every axis and write the report.

:func:`evaluate` runs in steps: load the source and check it against the data (:mod:`ntg.evaluation.sources`),
then one step per axis (:mod:`ntg.evaluation.axes`). After every axis ``report.json`` and ``report.md`` are
rewritten (each atomically), with ``settings["axes_status"]`` saying which axes are done, failed (with the
error) or still to run, so a failure on one axis keeps the others: the failure is reported, the remaining axes
still run, and :class:`EvaluationFailed` (an :class:`NtgError`, one line naming the axis) is raised at the end.

Profiles (:class:`EvaluateSettings`): ``full`` (default) scores against the real **test** split on every axis;
``fast`` is what a search runs per trial: fidelity, TSTR (Random Forest, one split seed) and the privacy figures
against the **validation** split, the test split untouched (the same numbers as
:func:`ntg.evaluation.fast.fast_scores`).

Fidelity compares synthetic flows (class counts matched to the reference split) with the real reference split
(held out, so copying training flows does not look like fidelity). Privacy compares the TSTR synthetic set with
the real training split, next to the reference split's natural copy level. Augmentation runs on the stored split.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ntg.data.dataset import PreparedDataset
from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.evaluation import report as report_mod
from ntg.evaluation.axes import AXIS_STEPS, AxisContext, axis_order, split_seeds
from ntg.evaluation.options import AXES, CLASSIFIER_NAMES, FAST_AXES, FRACTIONS, PROFILES
from ntg.evaluation.sources import Source, dataset_name, generator_factory, load_source, packet_window
from ntg.models.base import Generator


class EvaluationFailed(NtgError):
    """One or more axes failed; the others are in the report (``.report``)."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class EvaluateSettings:
    """How to evaluate (everything but what and where). ``classifier_options`` maps a classifier name to its
    constructor options (e.g. ``{"rf": {"n_estimators": 50}}``); augmentation uses the ``"rf"`` ones.
    ``augmentation_refit=False`` skips the "generator trained on the fraction alone" rows (one fit per fraction
    and seed: costly for neural families on a CPU). ``reference`` is the real split scored against."""

    axes: tuple[str, ...] = AXES
    profile: str = "full"
    split_seeds: int = 3
    retrain: bool = False
    n_packets: int | None = None
    progress: bool = True
    classifiers: tuple[str, ...] = CLASSIFIER_NAMES
    fractions: tuple[float, ...] = FRACTIONS
    augmentation_seeds: int = 3
    cost_flows: int = 2048
    cost_batch: int = 256
    classifier_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    augmentation_refit: bool = True
    reference: str = "test"

    @classmethod
    def for_profile(cls, profile: str = "full", **options: Any) -> EvaluateSettings:
        """The profile's defaults with ``options`` on top (unknown names are refused)."""
        if profile not in PROFILES:
            raise NtgError(f"unknown evaluation profile {profile!r}; choose from {list(PROFILES)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise NtgError(f"unknown evaluate option {unknown[0]!r}; choose from {sorted(known)}")
        base = cls(axes=FAST_AXES, split_seeds=1, classifiers=("rf",), reference="val") if profile == "fast" \
            else cls()
        given = {k: v for k, v in options.items() if v is not None}  # None: the profile's default
        settings = replace(base, profile=profile, **given)
        settings.check()
        return replace(settings, axes=tuple(settings.axes), classifiers=tuple(settings.classifiers),
                       fractions=tuple(float(f) for f in settings.fractions),
                       classifier_options={k: dict(v) for k, v in (settings.classifier_options or {}).items()})

    def check(self) -> None:
        unknown = [a for a in self.axes if a not in AXES]
        if unknown or not self.axes:
            raise NtgError(f"unknown evaluation axis {unknown[0] if unknown else None!r}; choose from {list(AXES)}")
        if self.split_seeds < 1:
            raise NtgError(f"--split-seeds must be at least 1, not {self.split_seeds}")
        bad = [c for c in self.classifiers if c not in CLASSIFIER_NAMES]
        if bad or not self.classifiers:
            raise NtgError(f"unknown classifier {bad[0] if bad else None!r}; choose from {list(CLASSIFIER_NAMES)}")
        outside = [f for f in self.fractions if not 0 < f < 1]
        if outside or not self.fractions:
            raise NtgError(f"augmentation fraction {outside[0] if outside else None!r}: give shares of the training "
                           "split between 0 and 1, e.g. --augmentation-fractions 0.01 0.1")
        if self.augmentation_seeds < 1:
            raise NtgError(f"--augmentation-seeds must be at least 1, not {self.augmentation_seeds}")
        if self.cost_flows < 1 or self.cost_batch < 1:
            raise NtgError(f"the compute-cost probe needs at least 1 flow and a batch of 1, not cost_flows="
                           f"{self.cost_flows}, cost_batch={self.cost_batch}")
        if self.reference not in ("val", "test"):
            raise NtgError(f"the reference split must be 'val' or 'test', not {self.reference!r}")


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(
    data_dir: str | Path,
    generator: Generator | str | Path | None = None,
    synthetic: FlowTable | str | Path | None = None,
    out_dir: str | Path | None = None,
    settings: EvaluateSettings | None = None,
    *,
    force: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate and return the report dict; with ``out_dir``, write ``report.json``, ``report.md`` and
    ``figures/`` there, updated after every axis.

    ``settings`` (an :class:`EvaluateSettings`) or its fields as keywords (``axes=``, ``split_seeds=``,
    ``profile="fast"``, ...). ``force`` lets ``out_dir`` replace a folder that is not an earlier report.
    Raises :class:`EvaluationFailed` after writing the report when an axis failed.
    """
    if settings is None:
        settings = EvaluateSettings.for_profile(options.pop("profile", "full") or "full", **options)
    elif options:
        raise NtgError("give evaluate either settings= or keyword options, not both")
    if out_dir is not None:
        from ntg.utils.io import claim_output_dir

        claim_output_dir(out_dir, "report", force=force)  # before any work: never over a folder ntg did not write
    started = time.perf_counter()
    dataset = PreparedDataset.load(data_dir)
    ctx = _context(dataset, load_source(generator, synthetic), settings)
    for warning in ctx.warnings:
        print(f"ntg: warning: {warning}", file=sys.stderr)
    report = _new_report(ctx, data_dir)
    status: dict[str, dict[str, Any]] = {a: {"status": "pending"} for a in axis_order(settings.axes)}
    report["settings"]["axes_status"] = status
    if out_dir is not None:
        _write(report, out_dir, fresh=True)
    for axis in status:
        t0 = time.perf_counter()
        try:
            report[axis] = AXIS_STEPS[axis](ctx)
            status[axis] = {"status": "done" if report[axis] is not None else "skipped"}
        except Exception as err:  # noqa: BLE001 - one axis's failure must not lose the others
            status[axis] = {"status": "failed", "error": _one_line(err),
                            "traceback": traceback.format_exc(limit=-8)}
        status[axis]["seconds"] = round(time.perf_counter() - t0, 3)
        ctx.tick()
        _finish(report, ctx, started)
        if out_dir is not None:
            _write(report, out_dir)
    ctx.bar.close()
    if out_dir is not None:
        _write_figures(report, out_dir, ctx)
    failed = [a for a, s in status.items() if s["status"] == "failed"]
    if failed:
        where = f"; the other axes are in {Path(out_dir) / 'report.md'}" if out_dir is not None else ""
        raise EvaluationFailed(f"evaluation axis {failed[0]!r} failed: {status[failed[0]]['error']}"
                               + (f" (and {failed[1:]})" if len(failed) > 1 else "") + where, report)
    return report


def _context(dataset: PreparedDataset, source: Source, settings: EvaluateSettings) -> _Context:
    from ntg.evaluation.sources import provenance_warnings

    if settings.retrain and source.generator is None:
        raise NtgError("--retrain needs --generator RUN_DIR (a synthetic file cannot be re-fitted)")
    if len(dataset.split(settings.reference)) == 0 or len(dataset.train) == 0:
        raise NtgError(f"{dataset.root}: the train and {settings.reference} splits need flows; re-prepare the "
                       "dataset with non-empty splits")
    warnings = provenance_warnings(source, dataset)
    seeds = split_seeds(dataset, settings.split_seeds)
    if "tstr" in settings.axes and len(seeds) > 1 and not settings.retrain:
        warnings.append(f"TSTR uses split seed {seeds[0]} only (the generator's own split); TRTR uses all "
                        f"{len(seeds)} — pass --retrain for TSTR over every split seed")
    n = packet_window(dataset, source.sampler, settings.n_packets)
    ctx = _Context(dataset=dataset, source=source, settings=settings, n=n, seeds=seeds,
                   reference=settings.reference, fit_like=generator_factory(source), warnings=warnings)
    from tqdm.auto import tqdm

    steps = len(settings.axes) + (len(seeds) * len(settings.classifiers) if "tstr" in settings.axes else 0)
    ctx.bar = tqdm(total=steps, desc="evaluate", disable=not settings.progress)
    ctx.tick = lambda: ctx.bar.update(1)
    return ctx


@dataclass
class _Context(AxisContext):
    bar: Any = None


def _new_report(ctx: _Context, data_dir: str | Path) -> dict[str, Any]:
    import ntg

    d = ctx.dataset
    report: dict[str, Any] = dict.fromkeys(report_mod.TOP_LEVEL_KEYS)
    source_meta = d.meta.get("source")
    report.update(
        schema_version=report_mod.REPORT_SCHEMA_VERSION,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        ntg_version=getattr(ntg, "__version__", None),
        data={"path": str(Path(data_dir)), "name": source_meta.get("name") if isinstance(source_meta, dict) else None,
              "described_as": dataset_name(d.meta, d.root), "classes": d.classes, "stored_split_seed": ctx.seeds[0],
              "flows": {"train": len(d.train), "val": len(d.val), "test": len(d.test)}},
        source=ctx.source.record,
        settings={**_settings_record(ctx.settings), "n_packets": ctx.n, "split_seeds": ctx.seeds},
        figures={},
        warnings=ctx.warnings,
    )
    report["headline"] = report_mod.headline(report)
    return report


def _settings_record(settings: EvaluateSettings) -> dict[str, Any]:
    record = asdict(settings)
    record["augmentation_fractions"] = record.pop("fractions")
    for key in ("axes", "classifiers", "augmentation_fractions"):
        record[key] = list(record[key])
    return record


def _finish(report: dict[str, Any], ctx: _Context, started: float) -> None:
    """Headline, warnings (failed and pending axes named) and wall time after an axis."""
    status = report["settings"]["axes_status"]
    notes = [f"axis {a} failed: {s['error']}" for a, s in status.items() if s["status"] == "failed"]
    pending = [a for a, s in status.items() if s["status"] == "pending"]
    if pending:
        notes.append(f"evaluation in progress: axes {pending} still to run")
    report["warnings"] = [*ctx.warnings, *notes]
    report["settings"]["wall_s"] = time.perf_counter() - started
    report["headline"] = report_mod.headline(report)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, NtgError) else f"{type(err).__name__}: {text}"


def _write(report: dict[str, Any], out_dir: str | Path, fresh: bool = False) -> None:
    """``report.json`` + ``report.md`` (each atomically); ``fresh`` replaces the folder as a whole first, so
    nothing of an earlier report (figures of axes not run now) survives."""
    if fresh:
        from ntg.utils.io import atomic_dir

        with atomic_dir(out_dir) as tmp:
            report_mod.write_report(report, tmp)
    else:
        report_mod.write_report(report, out_dir)


def _write_figures(report: dict[str, Any], out_dir: str | Path, ctx: _Context) -> None:
    """The figures of the axes that finished, then the report again with them (a figure that cannot be drawn is
    a warning, never a lost report)."""
    flows = ctx.figure_flows
    try:
        report["figures"] = report_mod.write_figures(
            report, out_dir, flows.get("reference"), flows.get("synthetic"), ctx.n,
            train=ctx.dataset.train.first(ctx.n))
    except Exception as err:  # noqa: BLE001 - the numbers are written already; keep them
        report["warnings"].append(f"figures not drawn: {_one_line(err)}")
    report_mod.write_report(report, out_dir)


def write_all(
    report: dict[str, Any], out_dir: str | Path, real_test: FlowTable | None, synth: FlowTable | None, n: int,
    force: bool = False, train: FlowTable | None = None,
) -> Path:
    """Figures, ``report.json`` and ``report.md`` of a finished report into ``out_dir``, replaced as a whole."""
    from ntg.utils.io import atomic_dir, claim_output_dir

    claim_output_dir(out_dir, "report", force=force, mark=False)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        report["figures"] = report_mod.write_figures(report, tmp, real_test, synth, n, train=train)
        report_mod.write_report(report, tmp)
    return out_dir


# ---------------------------------------------------------------------------------------------- compare
def compare(reports: dict[str, dict[str, Any]], out_png: str | Path | None = None) -> tuple[str, Path | None]:
    """A markdown table (rows: generators; columns: each axis's headline) and a fidelity-vs-cost PNG.

    The PNG (x: sampling µs per flow, y: fidelity score) is written to ``out_png`` when given and at least
    one report has both figures. The bootstrap baseline is marked with ``*``.
    """
    header = ["generator", "fidelity score ↓", "TSTR macro-F1", "copy rate", "TSTR/TRTR",
              "augmentation gain", "parameters", "flows/s"]
    rows, points = [], {}
    for name, rep in reports.items():
        h = rep["headline"]
        label = f"{name} *" if (rep.get("source") or {}).get("is_bootstrap") else name
        rows.append([label, h["fidelity_score"], h["tstr_macro_f1"], h["copy_rate"], h["tstr_trtr_ratio"],
                     h["augmentation_gain"], h["parameters"], h["sampling_flows_per_s"]])
        if h["fidelity_score"] is not None and h["sampling_flows_per_s"]:
            points[name] = (1e6 / h["sampling_flows_per_s"], h["fidelity_score"])
    lines = report_mod._table(header, rows)
    if any((rep.get("source") or {}).get("is_bootstrap") for rep in reports.values()):
        lines += ["", "\\* " + report_mod.BOOTSTRAP_NOTE]
    png = None
    if out_png is not None and points:
        datasets = {(rep.get("data") or {}).get("name") for rep in reports.values()} - {None}
        dataset = datasets.pop() if len(datasets) == 1 else ""
        png = report_mod.plot_fidelity_vs_cost(points, out_png, dataset=dataset)
    return "\n".join(lines) + "\n", png
