"""Neural character language models and the loop that trains them on any device.

Lecture 07 (``notebooks/07_rnn_text_generation.ipynb``) writes the GRU model and
one training step out in full; lecture 08 (``notebooks/08_attention.ipynb``)
writes the attention formula out. Both then use this module:

- :class:`GRULanguageModel`          Embedding -> GRU -> Linear, optionally conditioned (07)
- :class:`TransformerLanguageModel`  a tiny causal transformer, attention maps on request (08)
- :func:`train_lm`                   AdamW + cosine schedule; windows sliced on the device (07)
- :func:`evaluate_lm`                nats per character on a held-out corpus or set of rows
- :func:`generate`                   sampling with temperature / top-k / top-p (07 "Sampling")

Both models share one interface: ``model(x, state=None, cond=None)`` takes ids
``x`` (B, T) int64 and returns ``(logits, state)`` with logits (B, T, V); the
GRU's state is its hidden state (layers, B, H), the transformer's is ``None``.

Data comes in two shapes:

- a **corpus**: one (N,) int64 tensor of ids (the plays). Training draws
  windows of ``seq_len + 1`` ids at random offsets (or, with ``stateful=True``,
  reads B parallel streams in order and carries the GRU state between windows:
  truncated backpropagation through time).
- **rows**: ``(x, y)`` or ``(x, y, cond)`` from :func:`course_utils.text.names_to_tensors`,
  x and y (N, L) with padded targets ``-100`` and cond (N,) int64.

Everything stays on the data's device: offsets are drawn there, windows are
gathered there, and losses are summed there and read back only every
``log_every`` steps (no ``.item()`` per step). On CUDA the forward pass runs
in bfloat16 autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_utils import distributed
from course_utils.checks import check_ids, check_positive, check_tensor
from course_utils.devices import autocast
from course_utils.engine import check_loss, make_optimizer, prepare_model
from course_utils.resume import Resumer
from course_utils.text import BOUNDARY, IGNORE_INDEX, CharVocab, sample_next

__all__ = [
    "GRULanguageModel",
    "TransformerLanguageModel",
    "evaluate_lm",
    "generate",
    "train_lm",
]


def _check_ids(x: torch.Tensor, vocab_size: int, name: str = "x") -> None:
    check_tensor(x, name, shape=(None, None), dtype=torch.long)


def _check_cond(cond, num_conditions: int, batch: int) -> None:
    if num_conditions == 0 and cond is not None:
        raise ValueError("this model was built with num_conditions=0 and takes no cond")
    if num_conditions > 0:
        if cond is None:
            raise ValueError("this model is conditional: pass cond, (B,) ids in "
                             f"0..{num_conditions - 1}")
        check_tensor(cond, "cond", shape=(batch,), dtype=torch.long)


class GRULanguageModel(nn.Module):
    """The Embedding -> GRU -> Dense text generator common in Keras tutorials (07 "The model").

    Args:
        vocab_size: V, the number of characters.
        embed_dim: E, size of a character's embedding.
        hidden_size: H, size of the GRU state.
        num_layers: stacked GRU layers.
        dropout: dropout on the GRU's outputs (and between layers).
        num_conditions: C > 0 adds a learned (E,) vector for a condition id
            (e.g. 0 = female list, 1 = male list) to every input embedding.

    ``forward(x, state=None, cond=None)``: x (B, T) int64, state (layers, B, H)
    or None (zeros), cond (B,) int64 -> logits (B, T, V), new state.
    """

    stateful = True

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 1, dropout: float = 0.0, num_conditions: int = 0):
        super().__init__()
        for v, n in [(vocab_size, "vocab_size"), (embed_dim, "embed_dim"),
                     (hidden_size, "hidden_size"), (num_layers, "num_layers")]:
            check_positive(v, n, integer=True)
        self.vocab_size, self.num_conditions = vocab_size, num_conditions
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.cond_embed = nn.Embedding(num_conditions, embed_dim) if num_conditions else None
        self.gru = nn.GRU(embed_dim, hidden_size, num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None,
                cond: torch.Tensor | None = None):
        _check_ids(x, self.vocab_size)
        _check_cond(cond, self.num_conditions, x.shape[0])
        e = self.embed(x)  # (B, T, E)
        if self.cond_embed is not None:
            e = e + self.cond_embed(cond)[:, None, :]
        out, state = self.gru(e, state)  # (B, T, H), (layers, B, H)
        return self.head(self.drop(out)), state


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (08 "From the formula to a layer").

    Scores s_ij = q_i . k_j / sqrt(d_head), masked to j <= i, weights
    a_ij = softmax_j(s_ij), output sum_j a_ij v_j. The fast path calls
    ``F.scaled_dot_product_attention(is_causal=True)``; ``return_weights=True``
    computes the same thing by hand and also returns a (B, heads, T, T).
    ``bias=False`` drops the biases of its two linear maps.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        if return_weights:
            s = q @ k.transpose(-2, -1) / math.sqrt(d // self.n_heads)  # (B, heads, T, T)
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            a = s.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = a @ v
        else:
            a = None
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.proj(y), a


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)).

    ``bias=False``: no biases in its linear maps and LayerNorms (nanoGPT's option).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model, bias=bias), nn.LayerNorm(d_model, bias=bias)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout, bias)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model, bias=bias), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model, bias=bias), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        h, a = self.attn(self.ln1(x), return_weights)
        x = x + self.drop(h)
        return x + self.mlp(self.ln2(x)), a


class TransformerLanguageModel(nn.Module):
    """A tiny causal transformer over characters (08 "A tiny transformer").

    Token embedding + learned position embedding -> ``n_layers`` blocks ->
    LayerNorm -> Linear to V logits.

    Args:
        vocab_size: V. context: the longest input T it accepts (position table size).
        d_model, n_heads, n_layers, dropout: the usual sizes.
        num_conditions: as for :class:`GRULanguageModel`.
        bias: ``False`` drops every bias (linear maps, LayerNorms, the output layer),
            as nanoGPT's ``bias=False``.

    ``forward(x, state=None, cond=None, return_attention=False)``: x (B, T<=context)
    -> logits (B, T, V), None [, list of n_layers (B, heads, T, T) weights].
    """

    stateful = False

    def __init__(self, vocab_size: int, context: int = 128, d_model: int = 128, n_heads: int = 4,
                 n_layers: int = 4, dropout: float = 0.0, num_conditions: int = 0,
                 bias: bool = True):
        super().__init__()
        for v, n in [(vocab_size, "vocab_size"), (context, "context"), (d_model, "d_model"),
                     (n_heads, "n_heads"), (n_layers, "n_layers")]:
            check_positive(v, n, integer=True)
        self.vocab_size, self.context, self.num_conditions = vocab_size, context, num_conditions
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.cond_embed = nn.Embedding(num_conditions, d_model) if num_conditions else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout, bias) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model, bias=bias)
        self.head = nn.Linear(d_model, vocab_size, bias=bias)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, state=None, cond: torch.Tensor | None = None,
                return_attention: bool = False):
        _check_ids(x, self.vocab_size)
        _check_cond(cond, self.num_conditions, x.shape[0])
        t = x.shape[1]
        if t > self.context:
            raise ValueError(f"input has {t} positions but the model's context is {self.context}")
        h = self.embed(x) + self.pos(torch.arange(t, device=x.device))
        if self.cond_embed is not None:
            h = h + self.cond_embed(cond)[:, None, :]
        h = self.drop(h)
        maps = []
        for block in self.blocks:
            h, a = block(h, return_attention)
            maps.append(a)
        logits = self.head(self.ln(h))
        return (logits, None, maps) if return_attention else (logits, None)


# ----------------------------------------------------------------------------- training
def _corpus(data: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Check a (N,) corpus once (ids in 0..V-1) and move it to the model's device."""
    check_tensor(data, "data", shape=(None,), dtype=torch.long)
    data = data.to(next(model.parameters()).device)
    if getattr(model, "vocab_size", None):
        check_ids(data, "token ids in data", model.vocab_size, "vocab_size")
    return data


def _rows(data, model: nn.Module):
    """Check rows ``(x, y[, cond])`` once and move them to the model's device.

    x (N, L) ids in 0..V-1; y (N, L) the same or ``IGNORE_INDEX``, at least one target
    per row; cond (N,) in 0..num_conditions-1.
    """
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise TypeError("data must be a (N,) corpus tensor or a tuple (x, y) / (x, y, cond)")
    x, y = data[0], data[1]
    check_tensor(x, "x", shape=(None, None), dtype=torch.long)
    check_tensor(y, "y", shape=tuple(x.shape), dtype=torch.long)
    cond = data[2] if len(data) == 3 else None
    if cond is not None:
        check_tensor(cond, "cond", shape=(len(x),), dtype=torch.long)
    if len(x) == 0 or x.shape[1] == 0:
        raise ValueError(f"the rows are empty (x has shape {tuple(x.shape)}): nothing to train on")
    device = next(model.parameters()).device
    x, y, cond = x.to(device), y.to(device), None if cond is None else cond.to(device)
    vocab = getattr(model, "vocab_size", None)
    if vocab:
        check_ids(x, "token ids in x", vocab, "vocab_size")
        check_ids(y, "target ids in y", vocab, "vocab_size", allow=IGNORE_INDEX)
    empty = int(((y != IGNORE_INDEX).sum(1) == 0).sum())
    if empty:
        raise ValueError(f"{empty} row(s) of y have no target (every entry is the padding "
                         f"{IGNORE_INDEX}); each row needs at least one")
    if cond is not None and getattr(model, "num_conditions", 0):
        check_ids(cond, "cond", model.num_conditions, "num_conditions")
    return x, y, cond


def train_lm(
    model: nn.Module,
    data,
    steps: int,
    batch_size: int = 64,
    seq_len: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    stateful: bool = False,
    grad_clip: float = 1.0,
    warmup: int = 50,
    log_every: int = 50,
    eval_fn=None,
    eval_every: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "training",
    compile: bool | None = None,
    decay_filter=None,
    resume=None,
) -> dict:
    """Train ``model`` in place by next-character prediction; return its loss history.

    AdamW with a linear warm-up and a cosine decay to 10% of ``lr``, gradient
    clipping, cross-entropy on every target (padding skipped). The data are checked
    once (ids within the vocabulary and conditions, a target in every row) and moved
    to the model's device once; a NaN or infinite loss stops the run at the next
    logging sync (:class:`course_utils.engine.DivergenceError`).

    Args:
        data: a (N,) int64 corpus or a tuple of rows (see the module docstring).
        steps: optimiser steps. batch_size: B windows or rows per step.
        seq_len: T, window length (corpus only).
        stateful: read the corpus as B parallel streams in order, carrying the
            (detached) state from one window to the next: truncated BPTT (GRU).
        eval_fn: called with no arguments every ``eval_every`` steps and at the
            end; returns a held-out loss (float) recorded in the history.
        generator: a ``torch.Generator`` on the data's device for the offsets.
        compile: ``torch.compile`` the model (``None``: ``$COURSE_COMPILE``, off by default).
        decay_filter: ``f(name, parameter) -> bool``, the parameters ``weight_decay``
            applies to (the rest get none); ``None``: all of them. nanoGPT decays the
            matrices and embeddings only: ``lambda name, p: p.dim() >= 2``.
        resume: a folder for resume files (``None``: the one :func:`course_utils.load_or_train`
            sets, else none); an interrupted run continues from its last one
            (:mod:`course_utils.resume`).

    Under ``torchrun`` it trains data-parallel (:mod:`course_utils.distributed`):
    every process draws the same global batch and keeps its shard of the rows
    (of the streams, when ``stateful``); eval_fn then runs on every process.

    Returns:
        ``{"step": [...], "train": [...], "val_step": [...], "val": [...], "seconds": s}``:
        mean training loss (nats/char) over each logging interval, held-out loss
        at each evaluation, and the wall time.
    """
    import time

    check_positive(steps, "steps", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(log_every, "log_every", integer=True)
    device = next(model.parameters()).device
    corpus = isinstance(data, torch.Tensor)
    if corpus:
        check_tensor(data, "data", shape=(None,), dtype=torch.long)
        check_positive(seq_len, "seq_len", integer=True)
        if len(data) < seq_len + 2:
            raise ValueError(f"the corpus has {len(data)} ids, fewer than seq_len + 2 = "
                             f"{seq_len + 2}")
        data = _corpus(data, model)
        if stateful:
            n_stream = len(data) // batch_size
            streams = data[: n_stream * batch_size].view(batch_size, n_stream)  # (B, N/B)
            n_windows = (n_stream - 1) // seq_len
            if n_windows < 1:
                raise ValueError("the corpus is too short for batch_size streams of seq_len + 1")
        else:
            offsets_range = torch.arange(seq_len + 1, device=device)
    else:
        rows_x, rows_y, rows_c = _rows(data, model)

    params = model.parameters()
    if decay_filter is not None and not callable(decay_filter):
        raise TypeError("decay_filter must be a function (name, parameter) -> bool or None, "
                        f"got {type(decay_filter).__name__}")
    if decay_filter is not None:  # two groups: decayed, and exempt from decay
        named = [(decay_filter(n, p), p) for n, p in model.named_parameters()]
        params = [g for g in ({"params": [p for d, p in named if d]},
                              {"params": [p for d, p in named if not d], "weight_decay": 0.0})
                  if g["params"]]
    opt = make_optimizer("adamw", params, lr=lr, weight_decay=weight_decay,
                         betas=(0.9, 0.99))
    net = prepare_model(model, compile)  # DDP under torchrun, compiled if asked; else model

    def lr_at(step):  # linear warm-up, then cosine from lr to lr / 10
        if step < warmup:
            return (step + 1) / warmup
        p = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    history = {"step": [], "train": [], "val_step": [], "val": []}
    running = torch.zeros((), device=device)
    state, cond, done, before = None, None, 0, 0.0
    res = Resumer("train_lm", resume, {"model": model}, {"opt": opt}, {"sched": sched},
                  generators=[generator], total=steps, settings=dict(
                      data=data if corpus else None, rows=None if corpus else (
                          [rows_x, rows_y, rows_c]), steps=steps, batch_size=batch_size,
                      seq_len=seq_len, lr=lr, weight_decay=weight_decay, stateful=stateful,
                      grad_clip=grad_clip, warmup=warmup, log_every=log_every,
                      eval=eval_fn is not None, eval_every=eval_every,
                      decayed=None if decay_filter is None else [
                          bool(decay_filter(n, p)) for n, p in model.named_parameters()]))
    saved = res.restore()
    if saved is not None:
        done, history = saved["done"], saved["history"]
        state, before = saved["extra"]["state"], saved["extra"]["seconds"]
        state = None if state is None else state.to(device)
    start = time.perf_counter()
    model.train()
    show = progress and distributed.is_main()
    bar = tqdm(range(done, steps), initial=done, total=steps, desc=desc, leave=False,
               disable=not show, mininterval=2.0)
    for step in bar:
        if corpus and stateful:
            w = step % n_windows
            if w == 0:
                state = None  # back at the start of the streams
            chunk = streams[:, w * seq_len : w * seq_len + seq_len + 1]
            x, y = chunk[:, :-1], chunk[:, 1:]
        elif corpus:
            state = None  # random windows are unrelated: each starts from a zero state
            starts = torch.randint(0, len(data) - seq_len - 1, (batch_size, 1),
                                   device=device, generator=generator)
            chunk = data[starts + offsets_range]  # (B, T + 1), gathered on the device
            x, y = chunk[:, :-1], chunk[:, 1:]
        else:
            state = None  # rows (names) are unrelated: each starts from a zero state
            idx = torch.randint(0, len(rows_x), (batch_size,), device=device, generator=generator)
            x, y = rows_x[idx], rows_y[idx]
            cond = rows_c[idx] if rows_c is not None else None
        y_global = y
        x, y, cond = distributed.shard(x, y, cond)  # this process's rows (all without torchrun)
        # weigh each shard by its targets (padding skipped), which the mean loss runs over
        n_local, n_global = distributed.count_targets(y), distributed.count_targets(y_global)
        with autocast(device):
            logits, state = net(x, state, cond)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        distributed.scale_loss(loss, n_local, n_global).backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        if state is not None:
            state = state.detach()  # truncate backpropagation at the window boundary
        running += loss.detach() * (n_local / n_global)
        logged = (step + 1) % log_every == 0 or step + 1 == steps
        if logged:
            n = (step % log_every) + 1
            total = float(distributed.all_reduce_sum(running.clone())) / n  # the only sync
            check_loss([total], f"in steps {step + 2 - n}-{step + 1} (of {steps})",
                       history["train"][-1] if history["train"] else None)
            history["step"].append(step + 1)
            history["train"].append(total)
            running.zero_()
            bar.set_postfix(loss=f"{history['train'][-1]:.3f}")
        due = eval_every and ((step + 1) % eval_every == 0 or step + 1 == steps)
        if eval_fn is not None and due:
            history["val_step"].append(step + 1)
            history["val"].append(float(eval_fn()))
            model.train()
        if logged:
            res.save(step + 1, history, {"state": state,
                                         "seconds": before + time.perf_counter() - start})
    bar.close()
    model.eval()
    history["seconds"] = before + time.perf_counter() - start
    res.finish()
    return history


@torch.no_grad()
def evaluate_lm(model: nn.Module, data, batch_size: int = 256, chunk: int = 1024) -> float:
    """Nats per character of ``model`` on held-out ``data`` (a corpus or rows).

    Corpus: ids[1:] are predicted from what precedes them. A stateful model (GRU)
    reads the whole text as one stream in chunks, carrying its state, so every
    character sees its full history. A transformer slides a window of
    ``model.context`` ids with stride context/2 and scores each character once,
    with at least context/2 characters of history (all of it near the start).

    Rows: the mean over every non-padded target.
    """
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    if isinstance(data, torch.Tensor):
        check_tensor(data, "data", shape=(None,), dtype=torch.long)
        if len(data) < 2:
            raise ValueError("the held-out corpus needs at least 2 ids")
        data = _corpus(data, model)
        if getattr(model, "stateful", False):
            state = None
            for s in range(0, len(data) - 1, chunk):
                piece = data[s : s + chunk + 1]
                with autocast(device):
                    logits, state = model(piece[None, :-1], state)
                total += F.cross_entropy(logits[0].float(), piece[1:], reduction="sum")
                count += len(piece) - 1
        else:  # windows of L ids; each scores only targets not scored before
            length = min(model.context, len(data) - 1)
            stride = max(1, length // 2)
            spans, done = [], 1  # (window start, first target to score)
            while done < len(data):
                end = min(len(data), done + (length if done == 1 else stride))
                spans.append((end - 1 - length, done))
                done = end
            pos = torch.arange(length, device=device)
            for i in range(0, len(spans), batch_size):
                s, first = torch.tensor(spans[i : i + batch_size], device=device).T
                idx = s[:, None] + pos  # (b, L) input positions; targets are idx + 1
                with autocast(device):
                    logits, _ = model(data[idx])
                nll = F.cross_entropy(logits.float().transpose(1, 2), data[idx + 1],
                                      reduction="none")  # (b, L)
                total += nll[idx + 1 >= first[:, None]].sum()
            count = len(data) - 1
        return float(total) / count
    x, y, cond = _rows(data, model)
    for i in range(0, len(x), batch_size):
        c = cond[i : i + batch_size] if cond is not None else None
        with autocast(device):
            logits, _ = model(x[i : i + batch_size], None, c)
        yb = y[i : i + batch_size]
        total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), yb.reshape(-1),
                                 ignore_index=IGNORE_INDEX, reduction="sum")
        count += int((yb != IGNORE_INDEX).sum())
    return float(total) / count


@torch.no_grad()
def generate(
    model: nn.Module,
    vocab: CharVocab,
    prompt: str = "",
    length: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    cond: int | None = None,
    names: bool = False,
    generator: torch.Generator | None = None,
) -> str:
    """Sample text from a trained model, one character at a time (07 "Sampling").

    Args:
        prompt: text to continue (its characters must be in ``vocab``; for a
            transformer it must fit its context). Plain text needs a prompt.
        length: characters to generate (names: the most; a name stops at ".").
        names: start from the boundary mark and stop at the end mark.
        cond: the condition id for a conditional model.
        generator: a ``torch.Generator`` on the model's device.

    Returns:
        The generated characters (without the prompt or marks).
    """
    check_positive(length, "length", integer=True)
    vocab.check(prompt, "prompt")
    device = next(model.parameters()).device
    ctx_len = getattr(model, "context", None)
    if ctx_len is not None and len(prompt) + names > ctx_len:
        raise ValueError(f"the prompt has {len(prompt)} characters but the model's context is "
                         f"{ctx_len}; shorten the prompt to at most {ctx_len - names} characters")
    if not names and not prompt:
        raise ValueError("give a prompt (at least one character) to start plain text")
    c = torch.tensor([cond], device=device) if cond is not None else None
    model.eval()
    ids = vocab.encode((BOUNDARY if names else "") + prompt, device)[None]  # (1, T)
    stateful = getattr(model, "stateful", False)
    logits, state = model(ids, None, c)
    out = []
    for _ in range(length):
        nxt = sample_next(logits[:, -1].float(), temperature, top_k, top_p, generator)
        ch = vocab.itos[int(nxt)]
        if names and ch == BOUNDARY:
            break
        out.append(ch)
        nxt = nxt.to(device)[None]  # (1, 1)
        if stateful:
            logits, state = model(nxt, state, c)
        else:
            ids = torch.cat([ids, nxt], dim=1)[:, -ctx_len:]
            logits, _ = model(ids, None, c)
    return "".join(out)
