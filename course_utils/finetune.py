"""Fine-tuning a pretrained model: freezing parameters, and low-rank adaptation (LoRA).

Lecture 13 (``notebooks/13_pretraining_to_applications.ipynb``) pretrains the character
transformer of lecture 08 on the plays and fine-tunes it on names three ways: all its
weights, only the last block and the head (:func:`freeze_except`), and LoRA
(:func:`add_lora`). Contents:

- :class:`LoRALinear`        y = base(x) + (alpha / r) x A^T B^T, the base frozen (Hu et al. 2022)
- :func:`add_lora`           wrap named ``nn.Linear`` layers in LoRA, freeze everything else
- :func:`merge_lora`         fold every LoRA update back into a plain ``nn.Linear`` (inference)
- :func:`freeze_except`      train only the parameters under some names ("blocks.3", "head")
- :func:`count_parameters`   how many numbers an optimiser would change
- :func:`check_vocab_subset` can data be encoded in the pretrained model's vocabulary?

The names are encoded in the *pretrained* vocabulary (the plays' 80 characters include
a-z and the boundary mark "."), so the pretrained embedding and output rows of those
characters carry over; :func:`check_vocab_subset` says which characters are missing when
that is not so, and ``CharVocab.encode`` / :func:`course_utils.text.names_to_tensors`
do the encoding.

Frozen parameters and the course's training loops: :func:`course_utils.lm.train_lm`
hands *all* parameters to AdamW, but a parameter with ``requires_grad=False`` never gets a
gradient, and PyTorch's Adam/AdamW skip every parameter whose ``.grad`` is ``None``:
weight decay included, so frozen weights stay bit-identical (``tests/test_finetune.py``
checks it). The freezing functions here also drop any gradient a parameter still holds
from earlier training, so that no stale gradient can move it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from course_utils.text import CharVocab

__all__ = [
    "DEFAULT_TARGETS",
    "LoRALinear",
    "add_lora",
    "check_vocab_subset",
    "count_parameters",
    "freeze_except",
    "merge_lora",
]

DEFAULT_ALPHA = 8.0
"""LoRA's default alpha: the update is scaled by alpha / rank (1 at rank 8)."""

DEFAULT_TARGETS = ("attn.qkv", "attn.proj")
"""The linear maps :func:`add_lora` adapts by default: the attention projections of every
:class:`course_utils.lm.Block` (the fused query/key/value map and the output map)."""


def _check_rank(rank, in_features: int, out_features: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"rank must be an int, got {rank!r} ({type(rank).__name__})")
    most = min(in_features, out_features)
    if rank < 1 or rank > most:
        raise ValueError(f"rank must be an int in 1..{most} (min(in_features, out_features) = "
                         f"min({in_features}, {out_features})), got {rank}")
    return rank


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
            or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite positive number, got {alpha!r}")
    return float(alpha)


def _drop_grads(model: nn.Module) -> None:
    for p in model.parameters():
        if not p.requires_grad:
            p.grad = None


class LoRALinear(nn.Module):
    """Low-rank adaptation of a linear map (Hu et al. 2022, "LoRA: Low-Rank Adaptation of
    Large Language Models").

    ``y = base(x) + (alpha / rank) * x A^T B^T``, with the base weight W (out, in) and bias
    frozen, and two trainable factors A (rank, in) and B (out, rank): the update
    ``(alpha / rank) B A`` to W has rank at most ``rank`` and costs ``rank * (in + out)``
    parameters instead of ``in * out``.

    Initialisation: B = 0, so at first the layer computes exactly ``base(x)`` and
    fine-tuning starts from the pretrained model. A is Kaiming-uniform, as ``nn.Linear``
    initialises its weights (U(-1/sqrt(in), 1/sqrt(in))), which is what the authors'
    ``loralib`` and Hugging Face ``peft`` do (the paper says "a random Gaussian"): A must
    not be zero too (then neither factor would get a gradient), and at this scale
    ``x A^T`` has about the size of ``x`` whatever ``in`` is. N(0, 1/rank) would make that
    size grow as sqrt(in / rank).

    Scaling by alpha / rank: Hu et al. keep alpha fixed when they vary the rank (they set
    it to the first rank they try and do not tune it), so that the learning rate need not be
    re-tuned for each rank; the default alpha = 8 gives a scale of 1 at rank 8.

    Args:
        base: the pretrained ``nn.Linear`` (in_features -> out_features); wrapped in place
            (its parameters are frozen, not copied), so its state-dict keys gain ``base.``.
        rank: r, an int in 1..min(in_features, out_features).
        alpha: a finite positive number.

    ``forward(x)``: x (..., in_features) -> (..., out_features).
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float = DEFAULT_ALPHA):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        self.rank = _check_rank(rank, base.in_features, base.out_features)
        self.alpha = _check_alpha(alpha)
        self.scale = self.alpha / self.rank
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
            p.grad = None
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=w.device,
                                               dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=w.device,
                                               dtype=w.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own init

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"

    def delta_weight(self) -> torch.Tensor:
        """The update to the base weight, ``(alpha / rank) B A``: (out_features, in_features)."""
        return self.scale * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * ((x @ self.lora_A.T) @ self.lora_B.T)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A new plain ``nn.Linear`` with weight ``W + (alpha / rank) B A`` and the base's bias.

        It computes the same map as this module (up to rounding) at the cost of the base
        layer alone; its parameters are frozen like the base's (``requires_grad=False``).
        """
        w = self.base.weight
        out = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                        device=w.device, dtype=w.dtype)
        out.weight.copy_(w + self.delta_weight())
        if self.base.bias is not None:
            out.bias.copy_(self.base.bias)
        out.requires_grad_(False)
        return out


def _linear_names(model: nn.Module) -> list[str]:
    """Qualified names of the model's ``nn.Linear`` layers (not those inside a LoRALinear)."""
    lora = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)
            and not any(n == f"{p}.base" for p in lora)]


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def add_lora(model: nn.Module, rank: int, alpha: float = DEFAULT_ALPHA,
             targets: Sequence[str] = DEFAULT_TARGETS) -> nn.Module:
    """Wrap the named linear layers of ``model`` in :class:`LoRALinear`; freeze the rest.

    A target matches every ``nn.Linear`` whose qualified name equals it or ends with
    ``"." + target``: the default ``("attn.qkv", "attn.proj")`` picks the attention
    projections of every block of a :class:`course_utils.lm.TransformerLanguageModel`
    (``blocks.0.attn.qkv``, ...). Hu et al. adapt the query and value maps; here the
    query, key and value maps are one fused layer, so all three are adapted. Other
    choices: ``"mlp.0"``, ``"mlp.2"`` (the MLPs), ``"head"``.

    Every parameter but the new factors A and B is frozen (``requires_grad=False``), so
    :func:`course_utils.lm.train_lm` trains only them. The model changes in place and
    stays on its device. Load pretrained weights *before* this call (the wrapped layers'
    keys become ``...qkv.base.weight``); :func:`merge_lora` restores the original layout.

    Args:
        model: any module (its ``nn.Linear`` layers are searched).
        rank, alpha: as for :class:`LoRALinear` (the rank is checked against each layer).
        targets: name suffixes, each of which must match at least one linear layer.

    Returns:
        ``model``, with ``len(targets matched)`` LoRA layers (see :func:`count_parameters`).

    Raises:
        ValueError: a target matches no linear layer (the error lists those there are), or
            a layer was already adapted; the rank does not fit a layer; a bad alpha.
    """
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(targets)
    if not targets:
        raise ValueError("targets is empty: give at least one linear layer's name, e.g. "
                         f"{DEFAULT_TARGETS}")
    _check_alpha(alpha)
    adapted = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    linears = _linear_names(model)
    chosen = []
    for t in targets:
        if not isinstance(t, str) or not t:
            raise TypeError(f"each target must be a non-empty str, got {t!r}")
        hits = [n for n in linears if _matches(n, t)]
        if not hits:
            again = [n for n in adapted if _matches(n, t)]
            if again:
                raise ValueError(f"target {t!r} names layers that already have LoRA "
                                 f"({', '.join(again)}); call merge_lora(model) first")
            raise ValueError(f"target {t!r} matches no nn.Linear layer of "
                             f"{type(model).__name__}; its linear layers are: "
                             f"{', '.join(linears) or '(none)'}")
        chosen += [n for n in hits if n not in chosen]
    for n in chosen:  # check every rank before changing anything
        layer = model.get_submodule(n)
        _check_rank(rank, layer.in_features, layer.out_features)
    for p in model.parameters():
        p.requires_grad_(False)
    for n in chosen:
        _set_submodule(model, n, LoRALinear(model.get_submodule(n), rank, alpha))
    _drop_grads(model)
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` in ``model`` by its merged ``nn.Linear``; return it.

    The merged model computes the same function (up to rounding), has the original
    architecture and state-dict keys again (so it saves and loads as the pretrained model
    does), and runs as fast. Its parameters keep their ``requires_grad`` flags (the merged
    layers are frozen); call ``model.requires_grad_(True)`` to train everything again.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    if isinstance(model, LoRALinear):
        raise TypeError("merge_lora changes a model in place; for one LoRALinear call .merge()")
    for n in names:
        _set_submodule(model, n, model.get_submodule(n).merge())
    return model


def _top_level(model: nn.Module) -> list[str]:
    """Top-level names that hold parameters, containers shown with their index range."""
    out = []
    for name, child in model.named_children():
        if not any(True for _ in child.parameters()):
            continue
        if isinstance(child, (nn.ModuleList, nn.Sequential)) and len(child):
            out.append(f"{name} ({name}.0 ... {name}.{len(child) - 1})")
        else:
            out.append(name)
    out += [n for n, _ in model.named_parameters(recurse=False)]
    return out


def freeze_except(model: nn.Module, prefixes: str | Iterable[str]) -> nn.Module:
    """Freeze every parameter of ``model`` except those under the given names; return it.

    A parameter stays trainable when its name (as in ``model.named_parameters()``) equals a
    prefix or starts with ``prefix + "."``: ``"blocks.3"`` selects ``blocks.3.attn.qkv.weight``
    and the rest of block 3, but not ``blocks.30``. Training only the last block and the
    head of a 4-block :class:`course_utils.lm.TransformerLanguageModel`::

        freeze_except(model, ["blocks.3", "ln", "head"])

    The selected parameters are made trainable (``requires_grad=True``), all others frozen.

    Raises:
        ValueError: no prefix given, or a prefix that selects no parameter (the error
            lists the model's top-level names).
    """
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    prefixes = list(prefixes)
    if not prefixes:
        raise ValueError("prefixes is empty: name at least one part of the model to train "
                         "(e.g. ['head'])")
    names = [n for n, _ in model.named_parameters()]
    for pre in prefixes:
        if not isinstance(pre, str) or not pre:
            raise TypeError(f"each prefix must be a non-empty str, got {pre!r}")
        if not any(_under(n, pre) for n in names):
            raise ValueError(f"prefix {pre!r} selects no parameter of {type(model).__name__}; "
                             f"its top-level names are: {', '.join(_top_level(model))}")
    for n, p in model.named_parameters():
        p.requires_grad_(any(_under(n, pre) for pre in prefixes))
    _drop_grads(model)
    return model


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """The number of parameters (scalars) of ``model``; only trainable ones by default.

    Shared parameters count once. Masked or frozen entries count like any other unless
    ``trainable_only`` drops the frozen ones.
    """
    return sum(p.numel() for p in model.parameters()
               if p.requires_grad or not trainable_only)


def check_vocab_subset(vocab_big: CharVocab, chars_or_vocab_small,
                       name: str = "the data") -> torch.Tensor:
    """Check that every character of the small set is in ``vocab_big``; return their ids.

    Args:
        vocab_big: the pretrained model's :class:`course_utils.text.CharVocab`.
        chars_or_vocab_small: a ``CharVocab``, a str, or an iterable of strs (e.g. the list of
            names; add the boundary mark ``"."`` if the data use it).
        name: what the small set is, for the error message.

    Returns:
        (K,) int64: the ids in ``vocab_big`` of the K distinct characters of the small set,
        in the small vocabulary's order (sorted, for text). ``logits[..., ids]`` restricts a
        big-vocabulary model's predictions to them.

    Raises:
        ValueError: some characters are missing from ``vocab_big`` (they are listed).
        TypeError: the arguments are of the wrong kind.
    """
    if not isinstance(vocab_big, CharVocab):
        raise TypeError(f"vocab_big must be a CharVocab, got {type(vocab_big).__name__}")
    small = chars_or_vocab_small
    if isinstance(small, CharVocab):
        chars = list(small.itos)
    elif isinstance(small, str):
        chars = sorted(set(small))
    elif isinstance(small, Iterable):
        items = list(small)
        bad = [s for s in items if not isinstance(s, str)]
        if bad:
            raise TypeError(f"chars_or_vocab_small must be a CharVocab, a str or strs; got an "
                            f"item {bad[0]!r} ({type(bad[0]).__name__})")
        chars = sorted(set("".join(items)))
    else:
        raise TypeError("chars_or_vocab_small must be a CharVocab, a str or an iterable of "
                        f"strs, got {type(small).__name__}")
    if not chars:
        raise ValueError(f"{name} has no characters to check")
    missing = [c for c in chars if c not in vocab_big.stoi]
    if missing:
        raise ValueError(f"{len(missing)} character(s) of {name} are missing from the "
                         f"pretrained vocabulary: {', '.join(map(repr, missing))}; it has "
                         f"{len(vocab_big)} characters: {''.join(vocab_big.itos)!r}")
    return torch.tensor([vocab_big.stoi[c] for c in chars], dtype=torch.long)
