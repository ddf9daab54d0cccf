"""Diffusion generator: DDPM over a per-packet ``N x C`` matrix, sampled with DDIM.

What is diffused (``space``):

* ``"bits"`` (default): the analog bits of the packet tokens that the autoregressive families use
  (:mod:`ntg.models.token_bits`: presence, direction, Gray-coded size and iat bins), so decoded flows hit the
  exact sizes a device sends and the class's own values inside range bins.
* ``"matrix"``: the scaled sizes and times (:mod:`ntg.models.flow_matrix`), as in arXiv 2603.25507.

Measured on iot-sentinel, split seed 0, 60 epochs: bits reach fidelity 0.091 where the matrix reaches 0.129
(Markov 0.110), TSTR/TRTR 0.786 against 0.700 (``benchmarks/bench_quality.py``).

Training adds Gaussian noise on a cosine schedule and teaches :class:`~ntg.models.denoiser.PacketDenoiser` to
predict each clean analog bit (``target="bits"``, below) or ``v`` (``sqrt(ab)·eps − sqrt(1−ab)·x0``), dropping the
class label with probability ``label_dropout`` so one network is both conditional and unconditional. Sampling runs
``sampling_steps`` DDIM steps with classifier-free guidance ``guidance_scale`` (1 = plain conditional, a single
network pass per step). Left unset, :func:`~ntg.models.data_rules.guidance_rule` decides it in ``prepare``:
``default_guidance`` (1.5) where flows recur across captures or the table names none, 1 where they do not (there
guidance brought the flows onto training flows: ndpi-pcaps, item 24). 1.5 was measured: 3.0 pushed every class to
its modes and cost 0.1–0.2 TSTR/TRTR on ndpi-pcaps (0.91 at 1.0 and 1.5, 0.71 at 3.0), while iot-sentinel's 29
classes need some guidance (0.65 at 1.0, 0.79 at 1.5, both with ``target="v"``; with ``"bits"`` 0.877 at 1.0
against 0.893 at 1.5 over split seeds 0–4, item 24).
``self_condition`` feeds the denoiser its previous estimate of the clean bits (*Analog Bits*); it is off by default
because, over split seeds 0–2 at guidance 1.5, it helped one set and hurt another: iot-sentinel TSTR/TRTR 0.783
against 0.759 (fidelity 0.106 against 0.092), ndpi-pcaps 0.879 against 0.918, requet 0.983 against 0.992, at the
same training time. ``sample_precision`` "bfloat16" (or "auto" on hardware with native bf16) runs the denoiser on a
bf16 copy of the weights; the DDIM update stays float32. ``data_scale`` scales the clean matrix to ``±data_scale``
before noising (*b* in Chen 2023, *On the importance of noise scheduling*; larger keeps more signal at every noise
level). It stays 1: b = 2 scored TSTR/TRTR 0.909 against 0.904 and fidelity 0.200 against 0.197 on ndpi-pcaps (10
split seeds × 3 draws), 0.991 and 0.104 against 0.991 and 0.106 on requet (6 split seeds), both within the split
noise (``benchmarks/quality_findings.md``, item 13). ``guidance_sigma_min`` / ``guidance_sigma_max`` apply the
guidance only at the steps whose noise level ``σ = sqrt((1 − ᾱ) / ᾱ)`` lies between them (*guidance interval*,
Kynkäänniemi et al., NeurIPS 2024: guidance at high noise drops a class's minor modes); the other steps run one
conditional pass. Off by default (every step is guided); measured in ``benchmarks/quality_findings.md``, item 22.
``target="bits"`` trains the denoiser to predict each analog bit's probability with a cross-entropy instead of ``v``
with a squared error (the categorical objective of CDCD, Dieleman et al. 2022, on the analog bits): sampling reads
the expected bits and turns them into ``v``, so the DDIM step and the guidance are unchanged. The default since
2026-12-07, when the benchmark refitted every diffusion cell with it (``benchmarks/quality_findings.md``, item 23):
iot-sentinel TSTR/TRTR 0.893 against 0.844 with ``v`` (5 split seeds, fidelity 0.079 against 0.084), augmentation
with 1 % of the flows 0.436 against 0.398, requet 0.992 against 0.990, ndpi-pcaps 0.923 against 0.904 with privacy
failing on one split of ten at guidance 1.5 (copy rate 0.063 against the gate's 0.061), which the guidance rule
mends (item 24). ``"v"`` stays for ``space="matrix"`` and for folders saved before the setting existed
(:attr:`SAVED_WITHOUT`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ntg.data.schema import DEFAULT_N, FlowTable
from ntg.errors import NtgError
from ntg.models.base import register
from ntg.models.data_rules import guidance_rule
from ntg.models.denoiser import PacketDenoiser
from ntg.models.empirical import training_packets
from ntg.models.flow_matrix import N_CHANNELS, FlowMatrixCodec
from ntg.models.neural import NeuralGenerator
from ntg.models.settings import spec
from ntg.models.token_bits import TokenBitsCodec
from ntg.models.tokenizer import PacketTokenizer

SPACES = ("bits", "matrix")
TARGETS = ("v", "bits")  # what the denoiser is trained to predict (DiffusionModel.target)
SAMPLE_CHUNK = 8192  # flows denoised together at most (bounds memory)


def cosine_alpha_bar(timesteps: int, offset: float = 0.008) -> torch.Tensor:
    """Cumulative signal fraction ``ᾱ_t`` of the cosine schedule (Nichol & Dhariwal), float64, ``(T,)``."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)


def noise_level(alpha_bar: float) -> float:
    """``σ = sqrt((1 − ᾱ) / ᾱ)``, the noise-to-signal ratio at cumulative signal fraction ``ᾱ`` (inf at 0)."""
    return math.sqrt((1 - alpha_bar) / alpha_bar) if alpha_bar > 0 else math.inf


class DiffusionModel(nn.Module):
    """Denoiser + noise schedule; ``forward(x0, class_id)`` returns the training loss."""

    def __init__(
        self,
        n_positions: int,
        n_channels: int,
        n_classes: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        mlp_ratio: float,
        dropout: float,
        timesteps: int,
        label_dropout: float,
        self_condition: bool,
        data_scale: float,
        target: str,  # the generator's settings are the one place these defaults live
    ) -> None:
        super().__init__()
        self.target = target
        self.n_classes = n_classes
        self.n_channels = n_channels
        self.timesteps = timesteps
        self.label_dropout = label_dropout
        self.data_scale = data_scale  # clean matrices lie in [-data_scale, data_scale]
        self.denoiser = PacketDenoiser(
            n_positions, n_channels, n_classes, d_model, n_layers, n_heads, mlp_ratio, dropout, self_condition
        )
        self.register_buffer("alpha_bar", cosine_alpha_bar(timesteps).float(), persistent=False)
        self.alpha_bar64 = cosine_alpha_bar(timesteps).tolist()  # exact at any weight dtype (bf16 sampling)

    def v_from_output(self, out: torch.Tensor, xt: torch.Tensor, ab: torch.Tensor | float) -> torch.Tensor:
        """The denoiser's output as ``v``: as it is for ``target="v"``; for ``"bits"`` the output holds each
        bit's logit, whose expected clean value ``data_scale·tanh(logit/2)`` gives ``v = (√ᾱ·x_t − x0)/√(1−ᾱ)``."""
        if self.target == "v":
            return out
        x0 = self.data_scale * torch.tanh(out / 2)
        if isinstance(ab, float):  # sampling: float64 factors, as 1 − ᾱ near t = 0 is below float32's resolution
            return (math.sqrt(ab) * xt.float() - x0) / math.sqrt(max(1 - ab, 1e-12))
        return (ab.sqrt() * xt.float() - x0) / (1 - ab).clamp(min=1e-12).sqrt()

    def forward(self, x0: torch.Tensor, class_id: torch.Tensor) -> torch.Tensor:
        b = x0.shape[0]
        t = torch.randint(0, self.timesteps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        ab = self.alpha_bar[t].view(b, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        v_target = ab.sqrt() * noise - (1 - ab).sqrt() * x0
        drop = torch.rand(b, device=x0.device) < self.label_dropout
        class_id = torch.where(drop, torch.full_like(class_id, self.n_classes), class_id)
        estimate = None
        if self.denoiser.self_condition and torch.rand(()) < 0.5:  # half the batches learn to refine their own estimate
            with torch.no_grad():
                v = self.v_from_output(self.denoiser(xt, t, class_id).float(), xt, ab)
                estimate = (ab.sqrt() * xt - (1 - ab).sqrt() * v).clamp(-self.data_scale, self.data_scale)
        pred = self.denoiser(xt, t, class_id, estimate).float()
        if self.target == "bits":  # cross-entropy of each bit; past a flow's end (0) the target is 1/2
            return F.binary_cross_entropy_with_logits(pred, (x0.float() / self.data_scale + 1) / 2)
        return F.mse_loss(pred, v_target.float())

    def predict_v(
        self,
        xt: torch.Tensor,
        t: int,
        class_id: torch.Tensor,
        guidance_scale: float,
        estimate: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The guided ``v`` prediction at integer time ``t`` for a batch (float32); ``estimate`` is the
        previous step's clean matrix for a self-conditioned denoiser."""
        b = xt.shape[0]
        tt = torch.full((b,), t, device=xt.device, dtype=torch.long)
        ab = self.alpha_bar64[t]
        x_in = xt.to(self.denoiser.input.weight.dtype)  # the DDIM update itself stays in float32
        if guidance_scale == 1.0:
            return self.v_from_output(self.denoiser(x_in, tt, class_id, estimate).float(), xt, ab)
        null = torch.full_like(class_id, self.n_classes)
        both_estimates = None if estimate is None else torch.cat([estimate, estimate])
        both = self.denoiser(
            torch.cat([x_in, x_in]), torch.cat([tt, tt]), torch.cat([class_id, null]), both_estimates
        ).float()
        cond, uncond = self.v_from_output(both[:b], xt, ab), self.v_from_output(both[b:], xt, ab)
        return uncond + guidance_scale * (cond - uncond)

    @torch.no_grad()
    def sample(
        self,
        class_id: torch.Tensor,
        n_positions: int,
        steps: int,
        guidance_scale: float,
        eta: float,
        generator: torch.Generator,
        guidance_sigmas: tuple[float, float] = (0.0, math.inf),
    ) -> torch.Tensor:
        """DDIM from pure noise to a clean ``(B, N, F)`` matrix in ``[-data_scale, data_scale]``; guidance applies
        at the steps whose noise level ``σ_t = sqrt((1 − ᾱ_t) / ᾱ_t)`` lies in ``(low, high]`` of
        ``guidance_sigmas``, the others run the plain conditional pass."""
        device = class_id.device
        x = torch.randn((len(class_id), n_positions, self.n_channels), generator=generator, device=device)
        times = torch.linspace(self.timesteps - 1, 0, steps, dtype=torch.float64).round().long().tolist()
        alpha_bar = self.alpha_bar64  # float64, whatever the module's dtype
        estimate = None  # a self-conditioned denoiser reads zeros before its first estimate
        for i, t in enumerate(times):
            ab = alpha_bar[t]
            ab_prev = alpha_bar[times[i + 1]] if i + 1 < len(times) else 1.0
            guided = guidance_sigmas[0] < noise_level(ab) <= guidance_sigmas[1]
            v = self.predict_v(x, t, class_id, guidance_scale if guided else 1.0, estimate)
            x0 = (math.sqrt(ab) * x - math.sqrt(1 - ab) * v).clamp(-self.data_scale, self.data_scale)
            if self.denoiser.self_condition:
                estimate = x0
            eps = (x - math.sqrt(ab) * x0) / math.sqrt(max(1 - ab, 1e-12))
            sigma = eta * math.sqrt(max((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev), 0.0))
            x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * torch.randn(x.shape, generator=generator, device=device)
        return x0


@register("diffusion")
class DiffusionGenerator(NeuralGenerator):
    """Class-conditioned DDPM on the flow matrix with a DiT-style denoiser (about 1.5 M parameters)."""

    #: a denoiser needs many more updates than the autoregressive families and does not memorise in 60 passes
    #: (ndpi-pcaps: TSTR/TRTR 0.61 after 12 epochs, 0.84–0.90 after 60). On large sets the validation loss is
    #: still falling after 60 (best epoch 60, 60, 58 on iot-sentinel's three split seeds), and 120 passes lift
    #: iot-sentinel's seed 0 from 0.786 to 0.849 at the same fidelity (0.092); an EMA of the weights (0.999) did
    #: not help (0.740). Early stopping cut such runs short (ntg/models/data_rules.py): the whole budget is
    #: trained and the last weights kept. benchmarks/quality_findings.md has the three-seed figures.
    default_epochs = (120, 60)
    default_selection = ("last", "last")
    #: ``guidance_scale`` where the data rule leaves the guidance on (flows that recur across captures; item 6)
    default_guidance: ClassVar[float] = 1.5
    #: folders saved before analog bits diffused the matrix, and before the cross-entropy target trained on v
    SAVED_WITHOUT: ClassVar[dict[str, Any]] = {"space": "matrix", "target": "v"}

    SETTINGS: ClassVar[dict[str, Any]] = {
        "d_model": spec("width of the denoiser (a multiple of n_heads)", 1),
        "n_layers": spec("denoiser blocks", 1),
        "n_heads": spec("attention heads", 1),
        "mlp_ratio": spec("MLP hidden width as a multiple of d_model", 0, open_low=True),
        "dropout": spec("dropout in the denoiser", 0, 1, open_high=True),
        "timesteps": spec("diffusion steps of the training noise schedule", 2),
        "label_dropout": spec("share of training rows without their class (classifier-free guidance)", 0, 1,
                              open_high=True),
        "sampling_steps": spec("DDIM steps when sampling (at most timesteps)", 1),
        "guidance_scale": spec("classifier-free guidance strength (0: unconditional, 1: conditional; unset: "
                               "decided from the training set, see ntg/models/data_rules.py)", 0),
        "guidance_sigma_min": spec("guidance only at noise levels sigma above this (0: down to the last step)", 0),
        "guidance_sigma_max": spec("guidance only at noise levels sigma up to this (null: from the first step)", 0,
                                   open_low=True),
        "eta": spec("DDIM noise (0: deterministic given the start noise)", 0),
        "class_values": spec("redraw each decoded size and time from the class's training values in its bin"),
        "space": spec("what is diffused: 'bits' (analog bits of the packet tokens) or 'matrix' (scaled values)",
                      choices=SPACES),
        "self_condition": spec("feed the denoiser its previous estimate of the clean flow (Analog Bits)"),
        "data_scale": spec("the clean matrix is scaled to [-data_scale, data_scale] before noising (b in Chen 2023)",
                           0, open_low=True),
        "target": spec("what the denoiser predicts: 'v' (mean squared error) or 'bits' (each analog bit's "
                       "probability, cross-entropy; space 'bits' only)", choices=TARGETS),
    }

    def __init__(
        self,
        n_packets: int = DEFAULT_N,
        seed: int = 0,
        d_model: int = 128,
        n_layers: int = 5,
        n_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        timesteps: int = 1000,
        label_dropout: float = 0.1,
        sampling_steps: int = 50,
        guidance_scale: float | None = None,
        guidance_sigma_min: float = 0.0,
        guidance_sigma_max: float | None = None,
        eta: float = 0.0,
        sample_precision: str = "auto",
        class_values: bool = True,
        space: str = "bits",
        self_condition: bool = False,
        data_scale: float = 1.0,
        target: str = "bits",
        capture_balance: bool | None = None,
    ) -> None:
        super().__init__(n_packets, seed)
        self._init_settings(locals())
        if self.d_model % self.n_heads:
            raise NtgError(f"diffusion: model.d_model={d_model} must be a multiple of model.n_heads={n_heads}")
        if self.sampling_steps > self.timesteps:
            raise NtgError(f"diffusion: model.sampling_steps={sampling_steps} must be at most "
                           f"model.timesteps={timesteps}")
        if self.target == "bits" and self.space != "bits":
            raise NtgError(f"diffusion: model.target='bits' needs model.space='bits', not {space!r}; "
                           "set model.target=v with model.space=matrix")
        self.codec_: FlowMatrixCodec | None = None
        self.values_: PacketTokenizer | None = None  # bins and class values of the training packets
        self.bits_: TokenBitsCodec | None = None  # space="bits": the analog-bit layout of values_'s tokens
        self.guidance_scale_ = self.default_guidance  # the guidance for guidance_scale=None, decided in prepare

    # ------------------------------------------------------------------ NeuralGenerator
    def prepare(self, train: FlowTable) -> None:
        train = training_packets(train, self.n_packets, self.family)
        self._learn_classes(train)
        self.codec_ = FlowMatrixCodec.fit(train, self.n_packets)
        class_ids = self.class_ids(train.labels)
        self.values_ = PacketTokenizer.fit(train, self.n_packets, class_ids=class_ids)
        packet, iat, _ = self.values_.encode(train, self.n_packets)
        share = self._decide_capture_rules(train, np.concatenate([packet, iat], axis=1), class_ids)
        self.guidance_scale_, note = guidance_rule(share, self.default_guidance, self.guidance_scale)
        self._data_notes.append(note)
        self.bits_ = TokenBitsCodec(self.values_, self.n_packets) if self.space == "bits" else None
        self.module = self.build_module()

    def build_module(self) -> DiffusionModel:
        assert self.classes_ is not None, "learn the classes first"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return DiffusionModel(
                n_positions=self.n_packets,
                n_channels=self.bits_.n_channels if self.bits_ is not None else N_CHANNELS,
                n_classes=len(self.classes_),
                d_model=self.d_model,
                n_layers=self.n_layers,
                n_heads=self.n_heads,
                mlp_ratio=self.mlp_ratio,
                dropout=self.dropout,
                timesteps=self.timesteps,
                label_dropout=self.label_dropout,
                self_condition=self.self_condition,
                data_scale=self.data_scale,
                target=self.target,
            )

    def encode(self, flows: FlowTable) -> dict[str, torch.Tensor]:
        assert self.codec_ is not None and self.classes_ is not None, "call prepare() first"
        codec = self.bits_ if self.bits_ is not None else self.codec_
        return {
            "x0": torch.from_numpy(codec.encode(flows) * np.float32(self.data_scale)),
            "class_id": torch.as_tensor(self.class_ids(flows.labels)),
        }

    def _sample(self, class_ids: np.ndarray, rng_seed: int) -> FlowTable:
        assert self.module is not None and self.codec_ is not None
        was_training = self.module.training
        self.module.eval()
        module = self.sampling_module()
        device = self.device
        generator = torch.Generator(device=device).manual_seed(int(rng_seed))
        chunks = []
        try:
            for start in range(0, len(class_ids), SAMPLE_CHUNK):
                ids = torch.as_tensor(
                    class_ids[start : start + SAMPLE_CHUNK], dtype=torch.long, device=device
                )
                x = module.sample(
                    ids, self.n_packets, self.sampling_steps, self.sampling_guidance, self.eta, generator,
                    (self.guidance_sigma_min, math.inf if self.guidance_sigma_max is None else self.guidance_sigma_max),
                )
                chunks.append(x.float().cpu().numpy() / self.data_scale)
        finally:
            self.module.train(was_training)
        channels = self.module.n_channels
        matrix = np.concatenate(chunks) if chunks else np.zeros((0, self.n_packets, channels), np.float32)
        if self.bits_ is not None:
            return self.bits_.decode(matrix, class_ids if self.class_values else None, rng_seed)
        flows = self.codec_.decode(matrix)
        if self.class_values and self.values_ is not None:
            self.values_.redraw_in_bins(flows, class_ids, np.random.default_rng([int(rng_seed), 1]))
        return flows

    @property
    def sampling_guidance(self) -> float:
        """The guidance sampling runs with: ``guidance_scale`` where set (also after loading), else the data
        rule's decision at fit time."""
        return self.guidance_scale if self.guidance_scale is not None else self.guidance_scale_

    # ------------------------------------------------------------------ persistence
    def learnt_metadata(self) -> dict[str, Any]:
        assert self.codec_ is not None
        values = {"values": self.values_.to_dict()} if self.values_ is not None else {}
        return {**super().learnt_metadata(), "codec": self.codec_.to_dict(), "space": self.space,
                "data_scale": self.data_scale, "guidance_scale": self.guidance_scale_, **values}

    def set_learnt_metadata(self, meta: dict[str, Any]) -> None:
        super().set_learnt_metadata(meta)
        self.codec_ = FlowMatrixCodec.from_dict(meta["codec"])
        values = meta.get("values")  # absent in generators saved before class values
        self.values_ = PacketTokenizer.from_dict(values) if values is not None else None
        self.space = meta.get("space", "matrix")  # generators saved before analog bits diffused the matrix
        self.data_scale = float(meta.get("data_scale", 1.0))  # generators saved before the scale diffused at 1
        self.guidance_scale_ = float(meta.get("guidance_scale", self.default_guidance))  # absent before the rule
        self.bits_ = TokenBitsCodec(self.values_, self.n_packets) if self.space == "bits" and self.values_ else None
