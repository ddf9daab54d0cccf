"""The interface every generator shares, scikit-learn in spirit and Hugging Face in its file layout.

* Hyperparameters are the constructor's keyword arguments and must be JSON-serialisable;
  :meth:`Generator.get_config` returns them.
* Hyperparameters are declared once (:mod:`ntg.models.settings`): type and default in the constructor's
  signature, range and help in the class's ``SETTINGS``; ``_init_settings`` validates and stores them.
* :meth:`Generator.fit` learns from a :class:`~ntg.data.schema.FlowTable` (the training split) and may look
  at a validation table for early stopping; every family has the same signature (the neural loop's
  arguments are ignored by baselines) and leaves a JSON-able ``fit_log_``. What is learnt from data (class
  names, value ranges, weights) is the generator's *state*; it knows every class of ``train``.
* :meth:`Generator.sample` returns a FlowTable in the dataset's schema, deterministic for a given seed; the
  families generate sizes, directions and timing, and :class:`~ntg.models.headers.HeaderModel` (fitted with
  the classes) fills in each flow's protocol and its packets' TCP flags and window.
* :meth:`Generator.save_pretrained` writes ``config.json`` (family, hyperparameters, learnt metadata) and
  ``model.safetensors`` (every tensor / array of the state); :func:`load_generator` reads any family back,
  from a local folder, a training checkpoint or a Hugging Face Hub repo id.

Subclasses register themselves with ``@register("family-name")``.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ntg.data.schema import DEFAULT_N, MAX_PACKETS, FlowTable
from ntg.errors import NtgError
from ntg.models.empirical import prefixed, unprefixed
from ntg.models.headers import HeaderModel
from ntg.models.settings import check_settings, class_settings, spec
from ntg.utils.io import atomic_dir

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1

GENERATORS: dict[str, type[Generator]] = {}

LabelRequest = str | Sequence[str] | np.ndarray | None


def register(family: str):
    """Class decorator: make a generator loadable by its family name."""

    def wrap(cls: type[Generator]) -> type[Generator]:
        cls.family = family
        GENERATORS[family] = cls
        return cls

    return wrap


def generator_class(family: Any, where: str | None = None) -> type[Generator]:
    """The registered class of ``family`` (registering the built-in families first); ``where`` names the file
    the name was read from, for the error."""
    import ntg.models  # noqa: F401  (registers every family)

    if family not in GENERATORS:
        prefix = f"{where}: " if where else ""
        raise NtgError(f"{prefix}unknown generator family {family!r}; choose one of {sorted(GENERATORS)}")
    return GENERATORS[family]


class Generator(ABC):
    """Base class: a class-conditioned generator of the first ``n_packets`` packets of biflows."""

    family: ClassVar[str] = "abstract"
    #: whether the family's own samples carry flags and window; if not, :class:`HeaderModel` fills them in
    generates_headers: ClassVar[bool] = False
    #: settings whose default changed after folders were saved without them: the value such a folder was fitted
    #: with (read by :meth:`settings_as_saved`, so an older folder or checkpoint loads as it was trained)
    SAVED_WITHOUT: ClassVar[dict[str, Any]] = {}
    SETTINGS: ClassVar[dict[str, Any]] = {
        "n_packets": spec("packets per flow the generator models (the first ones)", 1, MAX_PACKETS),
        "seed": spec("seeds initial weights and default sampling", 0),
    }

    def __init__(self, n_packets: int = DEFAULT_N, seed: int = 0) -> None:
        self._init_settings(locals())
        self.classes_: list[str] | None = None
        self.headers_: HeaderModel | None = None
        self.fit_log_: dict[str, Any] | None = None

    def _init_settings(self, arguments: Mapping[str, Any]) -> None:
        """Validate, coerce and store a constructor's arguments (call with ``locals()``)."""
        values = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
        for name, value in check_settings("model", self.family, values, class_settings(type(self))).items():
            setattr(self, name, value)

    # ------------------------------------------------------------------ hyperparameters
    @classmethod
    def settings_as_saved(cls, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """The hyperparameters a folder or checkpoint stored, each setting it predates at the value it was
        fitted with (:attr:`SAVED_WITHOUT`), not today's default."""
        return {**cls.SAVED_WITHOUT, **hparams}

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable), as scikit-learn's ``get_params``."""
        return {name: getattr(self, name) for name in class_settings(type(self))}

    # ------------------------------------------------------------------ learning and sampling
    def fit(
        self,
        train: FlowTable,
        val: FlowTable | None = None,
        *,
        train_config: Any = None,
        progress: bool = False,
        checkpoint_dir: str | Path | None = None,
        reporter: Any = None,
    ) -> Generator:
        """Learn from ``train`` (first ``n_packets`` packets of each flow); return self.

        The keyword arguments drive the neural training loop (:func:`ntg.models.fitting.train_generator`);
        table-based families ignore them, so every caller fits every family the same way. Afterwards
        ``fit_log_`` holds at least ``wall_s``, ``history`` (per-epoch stats, empty here), ``best_epoch``
        and ``num_train_flows``.
        """
        del train_config, progress, checkpoint_dir, reporter  # no training loop here
        started = time.perf_counter()
        self._fit(train, val)
        self.fit_log_ = {"wall_s": time.perf_counter() - started, "history": [], "best_epoch": None,
                         "stopped_early": False, "num_train_flows": len(train), "notes": []}
        return self

    def _fit(self, train: FlowTable, val: FlowTable | None) -> None:
        """Learn the state from ``train`` (the families without a training loop implement this)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither fit nor _fit")

    @abstractmethod
    def _sample(self, class_ids: np.ndarray, rng_seed: int) -> FlowTable:
        """Generate one flow per entry of ``class_ids`` (indices into ``classes_``)."""

    def sample(self, n: int, label: LabelRequest = None, seed: int | None = None) -> FlowTable:
        """``n`` flows; ``label`` is None (class mix of the training data), one class name, or one per row."""
        self._check_fitted()
        seed = self.seed if seed is None else seed
        class_ids = self._resolve_labels(n, label, seed)
        flows = self._sample(class_ids, seed)
        if self.headers_ is not None and not self.generates_headers:
            self.headers_.complete(flows, class_ids, seed)
        flows.meta["label"] = np.asarray(self.classes_, dtype=object)[class_ids]
        return flows

    def class_ids(self, labels: Sequence[str] | np.ndarray, what: str = "training data") -> np.ndarray:
        """Index into ``classes_`` of every label (the one class-name → index lookup of ``ntg.models``); a
        class the generator was not fitted on is an NtgError."""
        self._check_fitted()
        assert self.classes_ is not None
        lookup = {c: i for i, c in enumerate(self.classes_)}
        labels = [str(x) for x in labels]
        unknown = sorted(set(labels) - lookup.keys())
        if unknown:
            raise NtgError(f"unknown class {unknown[0]!r}: it was not in the {what} of this {self.family} "
                           f"generator, which knows {self.classes_}")
        return np.fromiter((lookup[x] for x in labels), dtype=np.int64, count=len(labels))

    def _resolve_labels(self, n: int, label: LabelRequest, seed: int) -> np.ndarray:
        assert self.classes_ is not None
        if label is None:
            priors = np.asarray(self.class_priors_, dtype=np.float64)
            rng = np.random.default_rng(seed + 7919)
            return rng.choice(len(self.classes_), size=n, p=priors / priors.sum())
        if isinstance(label, str):
            labels = [label] * n
        else:
            labels = list(label)
            if len(labels) != n:
                raise ValueError(f"got {len(labels)} labels for {n} flows")
        return self.class_ids(labels)

    def _learn_classes(self, train: FlowTable) -> None:
        """Record class names (sorted) and their training shares, and fit the header model; call at the start
        of :meth:`fit`."""
        labels = train.labels.astype(str)
        self.classes_ = sorted(set(labels.tolist()))
        counts = np.array([(labels == c).sum() for c in self.classes_], dtype=np.float64)
        self.class_priors_ = (counts / counts.sum()).tolist()
        self.headers_ = HeaderModel.fit(train, self.class_ids(labels), len(self.classes_), self.n_packets)

    def _check_fitted(self) -> None:
        if self.classes_ is None:
            raise NtgError(f"this {self.family} generator is not fitted; call fit() or load a trained one")

    # ------------------------------------------------------------------ cost
    def num_parameters(self) -> int:
        """Learnt numbers (trainable parameters for networks; table entries for baselines)."""
        return int(sum(np.asarray(v).size for v in self.state_arrays().values()))

    def flops_per_flow(self, batch: int = 256) -> float:
        """Floating-point operations to generate one flow (measured; 0 for table look-ups)."""
        return 0.0

    # ------------------------------------------------------------------ persistence
    @abstractmethod
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every learnt array, by name (written to ``model.safetensors``)."""

    @abstractmethod
    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state_arrays` (called after :meth:`set_learnt_metadata`)."""

    def learnt_metadata(self) -> dict[str, Any]:
        """JSON-serialisable learnt state besides arrays (class names, priors, value ranges...)."""
        return {"classes": self.classes_, "class_priors": self.class_priors_}

    def set_learnt_metadata(self, meta: dict[str, Any]) -> None:
        self.classes_ = list(meta["classes"])
        self.class_priors_ = list(meta["class_priors"])

    def save_pretrained(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory`` atomically."""
        from safetensors.numpy import save_file

        self._check_fitted()
        directory = Path(directory)
        config = {
            "ntg_format": FORMAT_VERSION,
            "family": self.family,
            "hparams": self.get_config(),
            "learnt": self.learnt_metadata(),
            "num_parameters": self.num_parameters(),
            **(extra or {}),
        }
        arrays = {k: np.ascontiguousarray(v) for k, v in self.state_arrays().items()}
        if self.headers_ is not None:
            headers = prefixed("headers", self.headers_.to_arrays())
            arrays.update({k: np.ascontiguousarray(v) for k, v in headers.items()})
        # keep any other files already in the folder (training logs, cards) while replacing the model
        with atomic_dir(directory) as tmp:
            if directory.exists():
                import shutil

                for item in directory.iterdir():
                    if item.name not in (CONFIG_FILE, WEIGHTS_FILE):
                        dest = tmp / item.name
                        (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest)
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            save_file(arrays, str(tmp / WEIGHTS_FILE))
        return directory

    @classmethod
    def from_pretrained(cls, source: str | Path, **hub_kwargs: Any) -> Generator:
        """Load from a folder or a Hub repo id; on a subclass, the family must match."""
        model = load_generator(source, **hub_kwargs)
        if cls is not Generator and not isinstance(model, cls):
            raise NtgError(f"{source} holds a {model.family} generator, not {cls.family}")
        return model


def looks_local(source: str | Path) -> bool:
    """Whether ``source`` is meant as a local path rather than a Hub repo id (``owner/name``): it starts with
    ``.``, ``/`` or ``~``, has more than one ``/``, or its parent folder exists."""
    text = str(source)
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        return True
    parent = Path(text).expanduser().parent
    return parent != Path(".") and parent.is_dir()


def resolve_model_dir(source: str | Path, **hub_kwargs: Any) -> Path:
    """A local folder as is; otherwise a Hugging Face Hub repo id, downloaded with huggingface_hub."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).exists():
            raise NtgError(f"{path}: no {CONFIG_FILE}; is this a trained ntg generator folder?")
        return path
    if path.exists():
        raise NtgError(f"{path}: expected a generator folder (config.json + model.safetensors), got a file")
    if looks_local(source):
        raise NtgError(f"{source}: no such generator folder; check the path (a Hub repo id looks like owner/name)")
    return _download(str(source), **hub_kwargs)


def _download(repo_id: str, **hub_kwargs: Any) -> Path:
    """A Hub repo's snapshot folder, or an NtgError saying why it could not be had."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id=repo_id, **hub_kwargs))
    except (HfHubHTTPError, LocalEntryNotFoundError, ValueError, OSError) as err:
        endpoint = hub_kwargs.get("endpoint") or constants.ENDPOINT
        if isinstance(err, LocalEntryNotFoundError) and constants.HF_HUB_OFFLINE:
            raise NtgError(f"{repo_id}: not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it; "
                           "download it once online (unset HF_HUB_OFFLINE) or give a local generator folder") from None
        if isinstance(err, RevisionNotFoundError):
            why = f"the Hub at {endpoint} has no revision {hub_kwargs.get('revision')!r} of this repo"
        elif isinstance(err, RepositoryNotFoundError):  # also gated / private repos without a valid token
            why = f"no such model repo on the Hub at {endpoint} (or it is private or gated: log in or set HF_TOKEN)"
        else:  # the client's first line is often just "404 Client Error."; keep its non-empty lines
            why = f"{err.__class__.__name__}: {' '.join(line for line in str(err).splitlines() if line.strip())}"
        raise NtgError(
            f"{repo_id}: neither a local generator folder nor a downloadable Hub repo ({why}); "
            "check the path or repo id, or set HF_ENDPOINT"
        ) from None


def load_generator(source: str | Path, *, best: bool = True, **hub_kwargs: Any) -> Generator:
    """Any registered family from a generator folder (``config.json`` + ``model.safetensors``), a training
    checkpoint (a folder holding ``checkpoint.pt``, or that file: its best weights, or with ``best=False``
    those of the last finished epoch) or a Hub repo id."""
    from safetensors.numpy import load_file

    from ntg.models.checkpoints import checkpoint_path, generator_from_checkpoint

    path = Path(source).expanduser()
    checkpoint = checkpoint_path(path) if not (path / CONFIG_FILE).exists() else None
    if checkpoint is not None:
        return generator_from_checkpoint(checkpoint, best=best)
    directory = resolve_model_dir(source, **hub_kwargs)
    config = json.loads((directory / CONFIG_FILE).read_text())
    model = generator_from_saved(config.get("family"), config["hparams"], where=str(directory / CONFIG_FILE))
    model.set_learnt_metadata(config["learnt"])
    arrays = load_file(str(directory / WEIGHTS_FILE))
    headers = unprefixed("headers", arrays)
    model.load_state_arrays({k: v for k, v in arrays.items() if not k.startswith("headers.")})
    model.headers_ = HeaderModel.from_arrays(headers) if headers else None  # None: saved before header models
    return model


def generator_from_saved(family: Any, hparams: Mapping[str, Any], where: str) -> Generator:
    """An unfitted generator with the family and hyperparameters a folder or checkpoint (``where``) stored; a
    setting the file predates takes the value it was fitted with (the class's ``SAVED_WITHOUT``), not today's
    default."""
    cls = generator_class(family, where=where)
    return cls(**cls.settings_as_saved(hparams))


def create_generator(family: str, **hparams: Any) -> Generator:
    """A fresh generator of ``family`` with the given hyperparameters (checked against its settings)."""
    cls = generator_class(family)
    return cls(**check_settings("model", family, hparams))
