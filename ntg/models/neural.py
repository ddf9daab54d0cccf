"""What the three neural families share: a torch module whose ``forward(**batch)`` returns the training loss.

A neural generator implements

* :meth:`NeuralGenerator.prepare` — learn data metadata from the training table (classes, tokeniser or
  normaliser ranges) and build ``self.module`` (an ``nn.Module``);
* :meth:`NeuralGenerator.encode` — turn a FlowTable into a dict of equally long tensors (one row per flow);
  the training loop batches these dicts and calls ``module(**batch)``, which returns the scalar loss, so the
  same module can be wrapped by DDP;
* :meth:`Generator._sample` — generation with ``self.module`` in eval mode.

:meth:`fit` runs the one training loop of :mod:`ntg.models.fitting`.
"""

from __future__ import annotations

import copy
import functools
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ntg.data.schema import FlowTable
from ntg.models.base import Generator
from ntg.models.data_rules import (
    LARGE_EPOCHS,
    LARGE_SELECTION,
    SMALL_EPOCHS,
    SMALL_SELECTION,
    capture_balance_rule,
    capture_share,
)
from ntg.models.fitting import Reporter, TrainConfig, TrainResult, train_generator
from ntg.models.settings import spec

SAMPLE_PRECISIONS = ("auto", "float32", "bfloat16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX), read from ``/proc/cpuinfo``.

    Without AMX, bf16 matmuls on a CPU are emulated or AVX-512-BF16 at best and rarely beat float32.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return False
    return any(line.startswith("flags") and " amx_bf16" in line for line in text.splitlines())


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls are fast on ``device`` (CUDA with bf16 support, or a CPU with AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


class NeuralGenerator(Generator):
    """Base of the transformer, state-space and diffusion families."""

    SETTINGS: ClassVar[dict[str, Any]] = {
        "sample_precision": spec("auto: bf16 sampling where the hardware multiplies bf16 natively",
                                 choices=SAMPLE_PRECISIONS),
        "capture_balance": spec("draw each epoch's flows so that a class's small captures weigh more against its "
                                "large ones (unset: decided from the data, see ntg/models/data_rules.py)"),
    }
    module: nn.Module | None = None
    training_result_: TrainResult | None = None
    #: per training flow, its weight in each epoch's draw, decided in ``prepare`` (data_rules.capture_balance_rule);
    #: None: every flow once per epoch, in a shuffled order
    flow_weights_: np.ndarray | None = None
    capture_balance: bool | None = None
    _data_notes: list[str]
    sample_precision: str = "float32"
    #: whether ``sample_precision="auto"`` picks bf16 on hardware with native bf16 matmuls: true where the
    #: family's sampling time is in matmuls (measured by benchmarks/bench_sample_precision.py)
    bf16_sampling_helps: bool = True
    #: epochs when ``train.epochs`` is unset: (large training sets, small ones); see :mod:`ntg.models.data_rules`
    default_epochs: ClassVar[tuple[int, int]] = (LARGE_EPOCHS, SMALL_EPOCHS)
    #: weights kept when ``train.selection`` is auto: (large training sets, small ones); same rules
    default_selection: ClassVar[tuple[str, str]] = (LARGE_SELECTION, SMALL_SELECTION)

    @abstractmethod
    def prepare(self, train: FlowTable) -> None:
        """Learn metadata from ``train`` (call ``_learn_classes`` first) and build ``self.module``."""

    def data_notes(self) -> list[str]:
        """What ``prepare`` decided from the training data for settings left unset (for the run's notes)."""
        return list(getattr(self, "_data_notes", []))

    def _decide_capture_rules(self, train: FlowTable, sequences: np.ndarray, class_ids: np.ndarray) -> float | None:
        """Set ``flow_weights_`` by :func:`~ntg.models.data_rules.capture_balance_rule` from the training flows'
        token ``sequences`` (one row per flow) and restart the data notes with its note; the share of flows that
        recur in another capture (None without captures), which other rules read too."""
        captures = train.meta["capture"].to_numpy() if "capture" in train.meta else None
        share = capture_share(sequences, class_ids, captures)
        self.flow_weights_, note = capture_balance_rule(share, class_ids, captures, self.capture_balance)
        self._data_notes = [note]
        return share

    @abstractmethod
    def build_module(self) -> nn.Module:
        """The network for the current hyperparameters and learnt metadata (used by prepare and loading)."""

    @abstractmethod
    def encode(self, flows: FlowTable) -> dict[str, torch.Tensor]:
        """Training tensors for ``flows`` (first ``n_packets`` packets), one row per flow."""

    def fit(
        self,
        train: FlowTable,
        val: FlowTable | None = None,
        *,
        train_config: TrainConfig | Mapping[str, Any] | None = None,
        progress: bool = False,
        checkpoint_dir: str | Path | None = None,
        reporter: Reporter | None = None,
    ) -> NeuralGenerator:
        """Train with the one loop (:func:`ntg.models.fitting.train_generator`); ``training_result_`` is its
        :class:`TrainResult`, ``fit_log_`` the same as a dict."""
        config = train_config if train_config is not None else TrainConfig()
        if not isinstance(config, TrainConfig):
            config = TrainConfig.from_dict(config)
        self.training_result_ = train_generator(
            self, train, val, config, progress=progress, checkpoint_dir=checkpoint_dir, reporter=reporter
        )
        self.fit_log_ = self.training_result_.to_dict()
        return self

    # ------------------------------------------------------------------ devices
    @property
    def device(self) -> torch.device:
        assert self.module is not None
        return next(self.module.parameters()).device

    def to(self, device: str | torch.device) -> NeuralGenerator:
        assert self.module is not None
        self.module.to(device)
        return self

    def resolved_sample_precision(self) -> str:
        """``sample_precision`` with ``"auto"`` resolved for this generator's device: bfloat16 where the
        hardware multiplies bf16 natively and the family gains from it, float32 elsewhere."""
        if self.sample_precision != "auto":
            return self.sample_precision
        return "bfloat16" if self.bf16_sampling_helps and native_bf16(self.device) else "float32"

    def sampling_module(self) -> nn.Module:
        """The module that samples: ``self.module`` in float32; in bfloat16 a bf16 copy of it, made once and
        remade whenever the weights change (training, loading, moving devices).

        A copy with bf16 weights, not autocast: autocast would cast every weight at every step, which costs
        more than the bf16 matmuls save at these sizes. On CPUs with AMX (or CUDA) bf16 matmuls run several
        times faster than float32; ``benchmarks/bench_sample_precision.py`` checks that the samples score the
        same. Like TF32 on GPUs, the precision is a speed setting: same seed, same weights and same hardware
        give the same flows; ``sample_precision="float32"`` gives the same flows on any hardware up to the
        rounding of its float32 kernels.
        """
        assert self.module is not None
        if self.resolved_sample_precision() == "float32":
            return self.module
        key = tuple((id(p), p._version, p.device) for p in self.module.parameters())
        cached = getattr(self, "_sampling_copy", None)
        if cached is None or cached[0] != key:
            cached = (key, copy.deepcopy(self.module).to(torch.bfloat16).eval())
            self._sampling_copy = cached
        return cached[1]

    # ------------------------------------------------------------------ cost and persistence
    def num_parameters(self) -> int:
        assert self.module is not None, "generator is not prepared"
        return int(sum(p.numel() for p in self.module.parameters() if p.requires_grad))

    def flops_per_flow(self, batch: int = 256) -> float:
        """FLOPs counted by ``torch.utils.flop_counter`` while sampling ``batch`` flows, divided by ``batch``."""
        from torch.utils.flop_counter import FlopCounterMode

        self._check_fitted()
        class_ids = np.zeros(batch, dtype=np.int64)
        counter = FlopCounterMode(display=False)
        with counter:
            self._sample(class_ids, 0)
        return counter.get_total_flops() / batch

    def state_arrays(self) -> dict[str, np.ndarray]:
        assert self.module is not None
        return {k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
                for k, v in self.module.state_dict().items()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.module = self.build_module()
        state = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}
        self.module.load_state_dict(state)
        self.module.eval()
