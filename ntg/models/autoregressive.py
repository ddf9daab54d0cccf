"""What the transformer and SSM families share: packet tokens in, a backbone, a factorised packet/iat head.

Sequence layout (``N = n_packets`` positions, one per generated packet)::

    position   0            1                      ...  N-1
    input      class emb    packet_1 + iat_1 emb        packet_{N-1} + iat_{N-1} emb
    predicts   packet_1     packet_2                    packet_N           (or EOS after the last packet)
               iat_1        iat_2                       iat_N              (iat head sees the packet token)

A *backbone* maps ``(B, L, d)`` to ``(B, L, d)`` causally and offers a constant-memory recurrent
``init_state(batch)`` / ``step(x, state, t)`` for sampling; :class:`AutoregressiveModel` wraps it with the
embeddings, heads and the loss, and :class:`AutoregressiveGenerator` with the ntg Generator interface.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ntg.data.schema import DEFAULT_N, FlowTable
from ntg.errors import NtgError
from ntg.models.data_rules import class_support_rule, context_noise_rule
from ntg.models.neural import NeuralGenerator
from ntg.models.settings import spec
from ntg.models.tokenizer import PacketTokenizer

SAMPLE_CHUNK = 4096  # flows generated per forward batch in _sample (bounds memory for large requests)


def sample_token(
    logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0, top_p: float = 1.0
) -> torch.Tensor:
    """One id per row from ``logits`` (B, V) with temperature and nucleus (top-p) filtering.

    Inverse-CDF sampling: one uniform draw per row located in the row's cumulative weights. Same distribution
    as ``torch.multinomial``, but one random number per row instead of one per vocabulary entry, which makes
    it several times cheaper on CPUs at the batch sizes of sampling.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float()
    weights = torch.exp((logits - logits.amax(-1, keepdim=True)) / temperature)
    order = None
    if top_p < 1.0:
        weights, order = weights.sort(dim=-1, descending=True)
        total = weights.sum(-1, keepdim=True)
        drop = weights.cumsum(-1) - weights > top_p * total  # keep the smallest prefix whose mass reaches top_p
        weights = weights.masked_fill(drop, 0.0)
    cdf = weights.cumsum(-1)
    u = torch.rand((cdf.shape[0], 1), generator=generator, device=cdf.device) * cdf[:, -1:]
    ids = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1).squeeze(-1)
    return ids if order is None else order.gather(-1, ids[:, None]).squeeze(-1)


def noise_context(packet: torch.Tensor, iat: torch.Tensor, rate: float, eos: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(packet, iat)`` (B, N) with each packet's token pair replaced, with probability ``rate``, by the pair
    another flow of the batch has at the same position (a random permutation of the rows): data noising as
    smoothing (Xie et al., ICLR 2017, "unigram noising" with the batch's positional unigram). A position where
    either flow has ended (EOS) is left alone, so the flow lengths the model is conditioned on stay real. Only the
    inputs are noised, never the targets: the model learns to predict the next packet from partly wrong context,
    which is what a back-off n-gram model does by design (``ntg/models/data_rules.py`` says when it is applied)."""
    other = torch.randperm(packet.shape[0], device=packet.device)
    other_packet = packet[other]
    swap = torch.rand(packet.shape, device=packet.device) < rate
    swap &= (packet != eos) & (other_packet != eos)
    return torch.where(swap, other_packet, packet), torch.where(swap, iat[other], iat)


class AutoregressiveModel(nn.Module):
    """Embeddings + backbone + factorised heads; ``forward(**batch)`` returns the training loss.

    ``context_noise``: the share of input packets :func:`noise_context` replaces while training (0: none)."""

    def __init__(self, backbone: nn.Module, d_model: int, n_classes: int, n_packet: int, n_iat: int,
                 n_packets: int, dropout: float = 0.0, context_noise: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(dropout)  # on the inputs and on the backbone's output; identity when sampling
        self.context_noise = context_noise
        self.n_packets = n_packets
        self.eos = n_packet - 1
        self.class_emb = nn.Embedding(n_classes, d_model)
        self.packet_emb = nn.Embedding(n_packet, d_model)
        self.iat_emb = nn.Embedding(n_iat, d_model)
        self.packet_head = nn.Linear(d_model, n_packet, bias=False)
        self.iat_cond = nn.Embedding(n_packet, d_model)  # the chosen packet token, seen by the iat head
        self.iat_head = nn.Linear(d_model, n_iat, bias=False)
        for emb in (self.class_emb, self.packet_emb, self.iat_emb, self.iat_cond):
            nn.init.normal_(emb.weight, std=0.02)
        for lin in (self.packet_head, self.iat_head):
            nn.init.normal_(lin.weight, std=0.02)

    # ------------------------------------------------------------------ training
    def inputs(self, cls: torch.Tensor, packet: torch.Tensor, iat: torch.Tensor) -> torch.Tensor:
        """(B, N, d): class embedding, then the embeddings of packets 1..N-1 (noised while training)."""
        if self.training and self.context_noise > 0:
            packet, iat = noise_context(packet, iat, self.context_noise, self.eos)
        prev = self.packet_emb(packet[:, :-1]) + self.iat_emb(iat[:, :-1])
        return self.drop(torch.cat([self.class_emb(cls)[:, None, :], prev], dim=1))

    def iat_logits(self, h: torch.Tensor, packet: torch.Tensor) -> torch.Tensor:
        return self.iat_head(F.silu(h + self.iat_cond(packet)))

    def logits(
        self, cls: torch.Tensor, packet: torch.Tensor, iat: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced ``(packet_logits, iat_logits)``, each (B, N, V)."""
        h = self.drop(self.backbone(self.inputs(cls, packet, iat)))
        return self.packet_head(h), self.iat_logits(h, packet)

    def forward(self, cls: torch.Tensor, packet: torch.Tensor, iat: torch.Tensor, length: torch.Tensor
                ) -> torch.Tensor:
        packet_logits, iat_logits = self.logits(cls, packet, iat)
        pos = torch.arange(packet.shape[1], device=packet.device)[None, :]
        packet_mask = pos <= length[:, None]  # real packets, then the EOS right after them
        iat_mask = (pos < length[:, None]) & (pos >= 1)  # first iat is always 0
        packet_loss = F.cross_entropy(packet_logits[packet_mask].float(), packet[packet_mask])
        iat_loss = F.cross_entropy(iat_logits[iat_mask].float(), iat[iat_mask]) if iat_mask.any() else 0.0
        return packet_loss + iat_loss

    # ------------------------------------------------------------------ sampling
    def first_step(self, cls: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Hidden state and backbone state after the class token, for each row of ``cls``.

        Position 0 depends on the class alone, so it is computed once per distinct class and gathered: a
        batch of one class pays for one row at this step instead of ``B``.
        """
        classes, inverse = torch.unique(cls, return_inverse=True)
        state = self.backbone.init_state(len(classes), cls.device)
        h, state = self.backbone.step(self.class_emb(classes), state, 0)
        return h[inverse], self.backbone.select_state(state, inverse)

    @torch.no_grad()
    def generate(self, cls: torch.Tensor, generator: torch.Generator, temperature: float = 1.0,
                 top_p: float = 1.0, compact: bool = True, support: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``(packet, iat)`` ids (B, N) with the backbone's recurrent step (EOS-padded after the end).

        With ``compact`` the rows of finished flows are dropped from the batch (and the backbone state) once
        an eighth of the rows still running have ended, so short flows stop costing compute. ``support`` holds
        bool masks ``(classes, packet tokens)`` and ``(classes, iat tokens)``: a row draws only the tokens its
        class allows.
        """
        b, n = cls.shape[0], self.n_packets
        packet = torch.full((b, n), self.eos, dtype=torch.long, device=cls.device)
        iat = torch.zeros((b, n), dtype=torch.long, device=cls.device)
        rows = torch.arange(b, device=cls.device)  # batch rows still generating
        done = torch.zeros(b, dtype=torch.bool, device=cls.device)
        h, state = self.first_step(cls)
        for t in range(n):
            logits = self.packet_head(h)
            if support is not None:
                logits = logits.masked_fill(~support[0][cls[rows]], float("-inf"))
            if t == 0:  # every flow has at least one packet, and the first packet's iat is 0 by the schema
                logits[:, self.eos] = float("-inf")
                p = sample_token(logits, generator, temperature, top_p)
                q = torch.zeros_like(p)
            else:
                p = sample_token(logits, generator, temperature, top_p)
                iat_logits = self.iat_logits(h, p)
                if support is not None:
                    iat_logits = iat_logits.masked_fill(~support[1][cls[rows]], float("-inf"))
                q = sample_token(iat_logits, generator, temperature, top_p)
            p = torch.where(done, self.eos, p)
            packet[rows, t], iat[rows, t] = p, q
            done = done | (p == self.eos)
            x = self.packet_emb(p) + self.iat_emb(q)
            if compact and t + 1 < n:
                n_done = int(done.sum())
                if n_done == len(rows):
                    break
                if n_done * 8 >= len(rows):
                    keep = (~done).nonzero().squeeze(1)
                    rows, x, done = rows[keep], x[keep], done[keep]
                    state = self.backbone.select_state(state, keep)
            if t + 1 < n:
                h, state = self.backbone.step(x, state, t + 1)
        return packet, iat


class AutoregressiveGenerator(NeuralGenerator):
    """Fits :class:`PacketTokenizer` on the training flows; samples with :meth:`AutoregressiveModel.generate`.

    Subclasses provide :meth:`build_backbone` and ``d_model``.
    """

    d_model: int
    SETTINGS: ClassVar[dict[str, Any]] = {
        "n_size_bins": spec("quantile bins of packet sizes besides the frequent exact sizes", 1),
        "n_iat_bins": spec("log-spaced bins of inter-arrival times", 1),
        "temperature": spec("sampling temperature (1: the learnt distribution)", 0, open_low=True),
        "top_p": spec("nucleus sampling: keep the most likely tokens up to this mass", 0, 1, open_low=True),
        "dropout": spec("dropout on the embeddings and on the backbone's output while training", 0, 1,
                        open_high=True),
        "class_support": spec("sample only the size and gap bins the class used in training (unset: decided "
                              "per class from the data, see ntg/models/data_rules.py)"),
        "context_noise": spec("share of the input packets that training replaces by another flow's packet at the "
                              "same position (unset: decided from the data, see ntg/models/data_rules.py)", 0, 1,
                              open_high=True),
    }
    #: ``context_noise`` where the data rule applies it (flows that do not recur across captures)
    default_context_noise: ClassVar[float] = 0.2

    def __init__(self, n_packets: int = DEFAULT_N, seed: int = 0, n_size_bins: int = 48, n_iat_bins: int = 48,
                 temperature: float = 1.0, top_p: float = 1.0, sample_precision: str = "auto",
                 dropout: float = 0.0, class_support: bool | None = None, capture_balance: bool | None = None,
                 context_noise: float | None = None) -> None:
        super().__init__(n_packets=n_packets, seed=seed)
        self._init_settings(locals())
        self.tokenizer_: PacketTokenizer | None = None
        self.confined_: np.ndarray | None = None  # per class: the decision for class_support=None, made in prepare
        self.context_noise_ = 0.0  # the share training noises, decided in prepare (context_noise_rule)
        self._data_notes: list[str] = []
        self.module = None

    def build_backbone(self) -> nn.Module:
        raise NotImplementedError

    # ------------------------------------------------------------------ NeuralGenerator hooks
    def prepare(self, train: FlowTable) -> None:
        self._learn_classes(train)
        class_ids = self.class_ids(train.labels)
        self.tokenizer_ = PacketTokenizer.fit(train, self.n_packets, self.n_size_bins, self.n_iat_bins,
                                              class_ids=class_ids)
        packet, iat, _ = self.tokenizer_.encode(train, self.n_packets)
        share = self._decide_capture_rules(train, np.concatenate([packet, iat], axis=1), class_ids)
        if self.class_support is None:
            self.confined_, note = class_support_rule(share, class_ids, len(self.classes_ or []))
            self._data_notes.append(note)
        self.context_noise_, note = context_noise_rule(share, self.default_context_noise, self.context_noise)
        self._data_notes.append(note)
        self.module = self.build_module()

    def build_module(self) -> AutoregressiveModel:
        if self.tokenizer_ is None or self.classes_ is None:
            raise NtgError(f"this {self.family} generator is not fitted; call fit() or load a trained one")
        tok = self.tokenizer_
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left untouched
            torch.manual_seed(self.seed)
            return AutoregressiveModel(self.build_backbone(), self.d_model, len(self.classes_),
                                       tok.n_packet_tokens, tok.n_iat_tokens, self.n_packets, self.dropout,
                                       self.context_noise_)

    def encode(self, flows: FlowTable) -> dict[str, torch.Tensor]:
        assert self.tokenizer_ is not None and self.classes_ is not None, "call prepare() first"
        cls = self.class_ids(flows.labels)
        packet, iat, length = self.tokenizer_.encode(flows, self.n_packets)
        return {
            "cls": torch.as_tensor(cls),
            "packet": torch.as_tensor(packet),
            "iat": torch.as_tensor(iat),
            "length": torch.as_tensor(length),
        }

    def _sample(self, class_ids: np.ndarray, rng_seed: int) -> FlowTable:
        assert self.module is not None and self.tokenizer_ is not None
        self.module.eval()
        module = self.sampling_module()
        device = self.device
        generator = torch.Generator(device=device).manual_seed(int(rng_seed))
        support = self._class_support(device)
        parts = []
        for start in range(0, len(class_ids), SAMPLE_CHUNK):
            chunk = class_ids[start : start + SAMPLE_CHUNK]
            cls = torch.as_tensor(chunk, dtype=torch.long, device=device)
            packet, iat = module.generate(cls, generator, self.temperature, self.top_p, support=support)
            parts.append(self.tokenizer_.decode(packet, iat, self.n_packets, generator, chunk))
        return FlowTable.concat(parts) if parts else FlowTable.empty(self.n_packets)

    def _class_support(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The per-class token masks of :meth:`AutoregressiveModel.generate` (EOS always allowed; a class left
        free allows every token), or None with no class confined or a tokenizer without class tables."""
        assert self.tokenizer_ is not None and self.classes_ is not None
        confined = self.confined_classes()
        if not confined.any() or self.tokenizer_.values is None:
            return None
        packet, iat = self.tokenizer_.values.class_support(len(self.classes_))
        packet[~confined], iat[~confined] = True, True
        packet = np.concatenate([packet, np.ones((len(packet), 1), dtype=bool)], axis=1)  # EOS
        return torch.as_tensor(packet, device=device), torch.as_tensor(iat, device=device)

    def confined_classes(self, decided: bool = False) -> np.ndarray:
        """A bool per class index: whether sampling confines it to its training tokens. ``class_support`` set by
        the user applies to every class; unset (or with ``decided``), the data rule's decision from ``prepare``."""
        n = len(self.classes_ or [])
        if self.class_support is not None and not decided:
            return np.full(n, bool(self.class_support))
        return self.confined_ if self.confined_ is not None else np.zeros(n, dtype=bool)

    # ------------------------------------------------------------------ persistence
    def learnt_metadata(self) -> dict[str, Any]:
        assert self.tokenizer_ is not None
        return {**super().learnt_metadata(), "tokenizer": self.tokenizer_.to_dict(),
                "class_support": self.confined_classes(decided=True).tolist(), "context_noise": self.context_noise_}

    def set_learnt_metadata(self, meta: dict[str, Any]) -> None:
        super().set_learnt_metadata(meta)
        self.tokenizer_ = PacketTokenizer.from_dict(meta["tokenizer"])
        decided = meta.get("class_support", False)  # a bool before the per-class rule; absent before any rule
        n = len(self.classes_ or [])
        self.confined_ = np.array(decided if isinstance(decided, list) else [bool(decided)] * n, dtype=bool)
        self.context_noise_ = float(meta.get("context_noise", 0.0))  # absent before the rule: no noise
