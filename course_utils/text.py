"""Characters as data: the vocabulary, the course's fixed splits, n-gram models and sampling.

Lecture 06 (``notebooks/06_text_before_deep_learning.ipynb``) writes the n-gram
counts and the sampling loop out by hand, then uses this module; lectures 07
and 08 reuse it for their baselines and for sampling from neural models.

- :class:`CharVocab`         characters <-> integer ids, with a clear error for unknown characters
- :func:`shakespeare_split`  the last 10% of the plays is the validation text (06, "Data")
- :func:`names_split`        a fixed, seeded 10% of the names is the validation set
- :func:`names_to_tensors`   names as padded (N, L) input/target rows for neural models (07)
- :class:`NGramModel`        character n-grams: add-k, Witten-Bell or Kneser-Ney smoothing (06)
- :func:`best_ngram`         sweep orders and smoothings, keep the best on validation text (06-08)
- :func:`sample_next`        one draw from logits with temperature, top-k and top-p (06, 07)
- :func:`results_table`      nats per character and perplexity, one row per model
- :func:`distinct_n`, :func:`ngram_novelty`, :func:`copy_share`  diversity and copying of
  samples (lecture 09)

Every model in the course is scored in **nats per character**: the mean of
``-log p(x_t | x_<t)`` over the validation characters (for names, over every
letter and the end-of-name mark). Perplexity is ``exp`` of it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from course_utils.checks import check_choice, check_positive, check_tensor
from course_utils.data import load_names, load_shakespeare

__all__ = [
    "BOUNDARY",
    "CharVocab",
    "NGramModel",
    "best_ngram",
    "copy_share",
    "distinct_n",
    "ngram_novelty",
    "names_split",
    "names_to_tensors",
    "results_table",
    "sample_next",
    "shakespeare_split",
]

BOUNDARY = "."
"""Start/end-of-name mark for the names data (names are lowercase a-z, so '.' is free)."""

IGNORE_INDEX = -100
"""Target value of padding positions (``F.cross_entropy``'s default ``ignore_index``)."""


# ----------------------------------------------------------------------------- vocabulary
class CharVocab:
    """A fixed list of characters and their integer ids (06 "Data and splits", 07 "Preprocessing").

    >>> v = CharVocab(".abc")
    >>> v.encode("cab").tolist(), v.decode([1, 2, 3])
    ([3, 1, 2], 'abc')
    """

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if not chars:
            raise ValueError("a vocabulary needs at least one character, got none")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("the vocabulary must be a sequence of single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary has repeated characters")
        self.itos: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str, extra: str = "") -> CharVocab:
        """The sorted set of characters in ``text`` (plus ``extra``, placed first)."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"cannot build a vocabulary from an empty corpus, got {text!r}")
        return cls(list(extra) + sorted(set(text) - set(extra)))

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters: {''.join(self.itos)!r})"

    def check(self, text: str, name: str = "text") -> str:
        """Raise a ValueError naming the characters of ``text`` that are not in the vocabulary."""
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
        bad = sorted(set(text) - set(self.stoi))
        if bad:
            raise ValueError(
                f"{name} has characters outside the vocabulary: {', '.join(map(repr, bad))}; "
                f"the vocabulary has {len(self)} characters: {''.join(self.itos)!r}"
            )
        return text

    def encode(self, text: str, device: torch.device | str | None = None) -> torch.Tensor:
        """``text`` as a (len(text),) int64 tensor of ids."""
        self.check(text)
        ids = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        lut = np.zeros(max(map(ord, self.itos)) + 1, dtype=np.int64)
        lut[[ord(c) for c in self.itos]] = np.arange(len(self))
        return torch.from_numpy(lut[ids]).to(device or "cpu")

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The string for a 1-D sequence of ids."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        bad = [i for i in ids if not 0 <= i < len(self)]
        if bad:
            raise ValueError(f"ids must be in 0..{len(self) - 1}, got {bad[:5]}")
        return "".join(self.itos[i] for i in ids)


# ----------------------------------------------------------------------------- the splits
def shakespeare_split(text: str | None = None, val_fraction: float = 0.1) -> tuple[str, str]:
    """``(train, val)``: the first 90% of the plays and the last 10% (06 "Data and splits").

    A contiguous cut, so no validation sentence was seen in training (the last
    10% is the end of The Merchant of Venice and Twelfth Night).
    """
    text = load_shakespeare() if text is None else text
    if not isinstance(text, str) or not text:
        raise ValueError("the corpus is empty: expected a non-empty str")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction!r}")
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


def names_split(
    seed: int = 0, val_fraction: float = 0.1
) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(train_names, val_names, train_lists, val_lists)``: a fixed, seeded 10% for validation.

    ``lists`` holds each name's census list, ``"female"`` or ``"male"`` (see
    ``data/README.md``: the 331 names on both lists count as female). The
    permutation comes from NumPy's PCG64 generator, which is stable across
    versions and machines.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction!r}")
    names, lists = load_names(with_list=True)
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = round(len(names) * val_fraction)
    val, train = order[:n_val], order[n_val:]
    return ([names[i] for i in train], [names[i] for i in val],
            [lists[i] for i in train], [lists[i] for i in val])


def names_to_tensors(
    names: Sequence[str], vocab: CharVocab, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Names as padded rows for teacher forcing (07 "Names, one per row").

    Row i of ``x`` is ``"." + name`` and row i of ``y`` is ``name + "."`` (the
    next character at each position); both are padded to length L = longest
    name + 1, ``x`` with the boundary id and ``y`` with ``IGNORE_INDEX`` so the
    loss skips the padding. Padding sits after the name, so a causal model's
    predictions for the real positions never see it.

    Returns:
        ``x`` (N, L) and ``y`` (N, L), int64.
    """
    if not names:
        raise ValueError("names is empty: expected at least one name")
    for n in names:
        vocab.check(n, f"name {n!r}")
    length = max(map(len, names)) + 1
    b = vocab.stoi[BOUNDARY]
    x = torch.full((len(names), length), b, dtype=torch.long)
    y = torch.full((len(names), length), IGNORE_INDEX, dtype=torch.long)
    for i, n in enumerate(names):
        ids = vocab.encode(n)
        x[i, 1 : len(n) + 1] = ids
        y[i, : len(n)] = ids
        y[i, len(n)] = b
    return x.to(device or "cpu"), y.to(device or "cpu")


# ----------------------------------------------------------------------------- n-grams
class NGramModel:
    """A character n-gram model: P(x_t | the previous n-1 characters) from counts (06).

    Three smoothings (Chen & Goodman 1998 compare many):

    - ``"add_k"``: ``(c(h x) + k) / (c(h) + k V)`` with the full context h;
      unseen contexts get the uniform distribution. Large n overfits badly.
    - ``"interpolated"`` (Witten-Bell): mix each order with the one below,
      ``P_n(x|h) = (c(h x) + u(h) P_{n-1}(x|h')) / (c(h) + u(h))``, where u(h)
      is the number of distinct characters seen after h and h' drops h's first
      character; order 0 mixes with the uniform distribution. No knob to tune.
    - ``"kneser_ney"`` (interpolated Kneser-Ney: Kneser & Ney 1995, in the
      interpolated form of Chen & Goodman 1998): subtract a fixed discount d
      from every seen count and give the freed mass to the order below,
      ``P_n(x|h) = (max(c(h x) - d, 0) + d u(h) P_{n-1}(x|h')) / c(h)``. The
      lower orders count *continuations* instead of occurrences:
      ``c(h x)`` becomes N1+(. h x), the number of distinct characters seen
      before ``h x`` (and ``c(h)``, ``u(h)`` their sum over x and the number of
      x with N1+ > 0), so a string seen often but always after the same
      character gets little lower-order mass. Only the longest context a
      prediction uses counts occurrences; below order 1 is the uniform
      distribution. A context with no counts passes the order below through.

    Every smoothing keeps the counts of all orders 1..n, so :meth:`restricted`
    turns one fitted model into any lower order and smoothing without recounting.

    Sequences: ``fit(["one long text"])`` for the plays; for names use
    ``pad=True``, which wraps each sequence as ``"." * (n-1) + name + "."`` so
    the model learns how names start and end (06 "Start and end of a name").
    Where a context is shorter than n-1 (the first characters of an unpadded
    text) the model uses what it has.

    Args:
        n: the order (1 = unigram, 2 = bigram, ...).
        vocab: the characters; every fitted or scored character must be in it.
        smoothing: ``"add_k"``, ``"interpolated"`` (Witten-Bell) or ``"kneser_ney"``.
        k: the pseudo-count of add-k smoothing (k > 0).
        pad: wrap sequences with the boundary mark (names).
        discount: Kneser-Ney's absolute discount d, 0 < d < 1 (Chen & Goodman 1998
            estimate d = n1 / (n1 + 2 n2) from the counts of counts; 0.75 is the usual default).
    """

    SMOOTHINGS = ("add_k", "interpolated", "kneser_ney")

    def __init__(self, n: int, vocab: CharVocab, smoothing: str = "interpolated",
                 k: float = 1.0, pad: bool = False, discount: float = 0.75):
        check_positive(n, "n", integer=True)
        check_choice(smoothing, "smoothing", self.SMOOTHINGS)
        check_positive(k, "k")
        if isinstance(discount, bool) or not isinstance(discount, (int, float)) \
                or not 0 < discount < 1:
            raise ValueError(f"discount must be a number with 0 < discount < 1, got {discount!r}")
        if not isinstance(vocab, CharVocab):
            raise TypeError(f"vocab must be a CharVocab, got {type(vocab).__name__}")
        if pad and BOUNDARY not in vocab.stoi:
            raise ValueError(f"pad=True needs the boundary mark {BOUNDARY!r} in the vocabulary")
        self.n, self.vocab, self.smoothing, self.k, self.pad = n, vocab, smoothing, k, pad
        self.discount = float(discount)
        self.ngrams: list[Counter] = []  # ngrams[j]: counts of (j+1)-character strings
        self.contexts: list[Counter] = []  # contexts[j]: c(h) for j-character contexts h
        self.followers: list[Counter] = []  # followers[j]: u(h), distinct next characters
        # Kneser-Ney's continuation counts, for orders 1..n-1 (built by fit() only when
        # smoothing="kneser_ney", or on first use by a restricted() copy):
        # cont[j][g] = N1+(. g) for (j+1)-character strings g, cont_contexts[j][h] = sum over x
        # of N1+(. h x), cont_followers[j][h] = number of x with N1+(. h x) > 0
        self._cont: tuple[list[Counter], list[Counter], list[Counter]] | None = None

    def _wrap(self, seq: str) -> str:
        return BOUNDARY * (self.n - 1) + seq + BOUNDARY if self.pad else seq

    def fit(self, sequences: Sequence[str]) -> NGramModel:
        """Count every j-gram, j = 1..n, in ``sequences`` (a list of str); returns self."""
        if isinstance(sequences, str):
            raise TypeError("fit() takes a list of sequences; wrap one text as [text]")
        if not sequences or not any(sequences):
            raise ValueError("the corpus is empty: expected at least one non-empty sequence")
        for s in sequences:
            self.vocab.check(s, "a training sequence")
        texts = [self._wrap(s) for s in sequences]
        self.ngrams, self.contexts, self.followers = [], [], []
        for j in range(1, self.n + 1):
            grams = Counter(t[i : i + j] for t in texts for i in range(len(t) - j + 1))
            ctx, fol = Counter(), Counter()
            for g, c in grams.items():
                ctx[g[:-1]] += c
                fol[g[:-1]] += 1
            self.ngrams.append(grams)
            self.contexts.append(ctx)
            self.followers.append(fol)
        self._cont = None
        if self.smoothing == "kneser_ney":
            self._continuation_counts()
        return self

    def _continuation_counts(self) -> tuple[list[Counter], list[Counter], list[Counter]]:
        """Kneser-Ney's N1+(. g) tables for orders 1..n-1, from the (j+1)-gram counts."""
        if self._cont is None:
            cont, cctx, cfol = [], [], []
            for j in range(1, self.n):  # (j+1)-grams x g give the continuation count of g
                c = Counter(g[1:] for g in self.ngrams[j])
                ctx, fol = Counter(), Counter()
                for g, k in c.items():
                    ctx[g[:-1]] += k
                    fol[g[:-1]] += 1
                cont.append(c)
                cctx.append(ctx)
                cfol.append(fol)
            self._cont = (cont, cctx, cfol)
        return self._cont

    def restricted(self, n: int, smoothing: str | None = None, k: float | None = None,
                   discount: float | None = None) -> NGramModel:
        """The same counts used as an order-``n`` model (n <= self.n), optionally with
        another smoothing, k or discount: a sweep over n and smoothings counts only once
        (Kneser-Ney's continuation counts too: they are built once and shared)."""
        check_positive(n, "n", integer=True)
        if n > self.n or (self.pad and n != self.n):
            raise ValueError(f"can restrict an order-{self.n} model to n <= {self.n}"
                             + (" (padded models: refit instead)" if self.pad else "")
                             + f", got n={n}")
        m = NGramModel(n, self.vocab, smoothing or self.smoothing,
                       self.k if k is None else k, self.pad,
                       self.discount if discount is None else discount)
        m.ngrams, m.contexts, m.followers = self.ngrams[:n], self.contexts[:n], self.followers[:n]
        if m.smoothing == "kneser_ney" and self.ngrams:
            # the order-(j+1) continuation table depends only on the (j+2)-grams: slice
            m._cont = tuple(t[: n - 1] for t in self._continuation_counts())
        return m

    def _check_fitted(self):
        if not self.ngrams:
            raise RuntimeError("the model has no counts yet: call fit() first")

    def prob(self, char: str, context: str) -> float:
        """P(char | context); only the last n-1 characters of ``context`` matter."""
        self._check_fitted()
        h = context[max(0, len(context) - (self.n - 1)):] if self.n > 1 else ""
        v = len(self.vocab)
        if self.smoothing == "add_k":
            j = len(h)
            return (self.ngrams[j][h + char] + self.k) / (self.contexts[j][h] + self.k * v)
        if self.smoothing == "kneser_ney":
            return self._prob_kneser_ney(char, h)
        p = 1.0 / v  # order "-1": uniform
        for j in range(len(h) + 1):  # contexts "", h[-1:], h[-2:], ..., h
            hj = h[len(h) - j:]
            total = self.contexts[j][hj]
            if total:
                u = self.followers[j][hj]
                p = (self.ngrams[j][hj + char] + u * p) / (total + u)
        return p

    def _prob_kneser_ney(self, char: str, h: str) -> float:
        """Interpolated Kneser-Ney, from the uniform distribution up to the context ``h``."""
        cont, cctx, cfol = self._continuation_counts()
        d = self.discount
        p = 1.0 / len(self.vocab)  # order "-1": uniform
        for j in range(len(h) + 1):  # contexts "", h[-1:], ..., h
            hj = h[len(h) - j:]
            if j == len(h):  # the longest context: occurrence counts
                c, total, u = self.ngrams[j][hj + char], self.contexts[j][hj], self.followers[j][hj]
            else:  # lower orders: continuation counts
                c, total, u = cont[j][hj + char], cctx[j][hj], cfol[j][hj]
            if total:
                p = (max(c - d, 0.0) + d * u * p) / total
        return p

    def probs(self, context: str) -> torch.Tensor:
        """The next-character distribution after ``context``: (V,) float64, sums to 1."""
        self.vocab.check(context, "context")
        return torch.tensor([self.prob(c, context) for c in self.vocab.itos], dtype=torch.float64)

    def nll(self, sequences: Sequence[str]) -> tuple[float, int]:
        """``(total negative log-likelihood in nats, number of predicted characters)``.

        Padded models predict every character of each sequence and its end mark;
        unpadded ones predict every character of each sequence.
        """
        self._check_fitted()
        if isinstance(sequences, str):
            raise TypeError("nll() takes a list of sequences; wrap one text as [text]")
        total, count = 0.0, 0
        start = self.n - 1 if self.pad else 0
        for s in sequences:
            self.vocab.check(s, "a scored sequence")
            t = self._wrap(s)
            for i in range(start, len(t)):
                total -= math.log(self.prob(t[i], t[max(0, i - self.n + 1) : i]))
                count += 1
        if count == 0:
            raise ValueError("nothing to score: the sequences are empty")
        return total, count

    def nats_per_char(self, sequences: Sequence[str]) -> float:
        """Mean negative log-likelihood per predicted character (nats); exp() is the perplexity."""
        total, count = self.nll(sequences)
        return total / count

    def sample(self, length: int | None = None, prompt: str = "", temperature: float = 1.0,
               top_k: int | None = None, generator: torch.Generator | None = None) -> str:
        """Draw characters one at a time from P(x_t | x_<t) (the chain rule, run forwards).

        Padded models (names) start from the boundary and stop at the end mark
        (``length`` caps the length, default 50); unpadded ones need ``length``.
        Returns the generated text without the prompt or the marks.
        """
        self._check_fitted()
        self.vocab.check(prompt, "prompt")
        if length is None and not self.pad:
            raise ValueError("an unpadded model needs length= (it has no end mark)")
        length = 50 if length is None else check_positive(length, "length", integer=True)
        context = (BOUNDARY * (self.n - 1) if self.pad else "") + prompt
        out = []
        for _ in range(length):
            logits = self.probs(context[-(self.n - 1):] if self.n > 1 else "").log()
            i = int(sample_next(logits[None], temperature, top_k, generator=generator)[0])
            c = self.vocab.itos[i]
            if self.pad and c == BOUNDARY:
                break
            out.append(c)
            context += c
        return "".join(out)


def best_ngram(
    train: Sequence[str],
    val: Sequence[str],
    vocab: CharVocab,
    orders: Iterable[int] = range(1, 9),
    smoothings: Sequence[str] = ("add_k", "interpolated", "kneser_ney"),
    pad: bool = False,
    *,
    k: float = 1.0,
    discount: float = 0.75,
) -> tuple[NGramModel, dict[tuple[str, int], float]]:
    """Sweep n-gram orders and smoothings; keep the one with the lowest loss on ``val`` (06).

    The choice is made **on the validation data** ``val``: its score is then an
    optimistic estimate of the chosen model on new text (slightly so: only
    ``len(orders) * len(smoothings)`` candidates compete). Unpadded models are
    counted once, at ``max(orders)``, and every candidate is a
    :meth:`NGramModel.restricted` view of those counts; padded models (names)
    are fitted once per order.

    Args:
        train: training sequences, a list of str (``[train_text]`` for the plays).
        val: validation sequences, a list of str; scored in nats per character.
        vocab: the characters.
        orders: the orders n to try (positive ints).
        smoothings: the smoothings to try (see :class:`NGramModel`).
        pad: wrap sequences with the boundary mark (names).
        k, discount: add-k's pseudo-count and Kneser-Ney's discount.

    Returns:
        ``(model, table)``: the best model (ties go to the first in the sweep, smoothings
        in the given order, then lower n first) and ``{(smoothing, n): nats per character}``
        for every candidate.
    """
    for name, seqs in (("train", train), ("val", val)):
        if isinstance(seqs, str):
            raise TypeError(f"{name} must be a list of str; wrap one text as [text]")
    orders = sorted(set(orders))
    if not orders:
        raise ValueError("orders is empty: expected at least one order n >= 1")
    for n in orders:
        check_positive(n, "every order", integer=True)
    smoothings = list(smoothings)
    if not smoothings:
        raise ValueError("smoothings is empty: expected at least one of "
                         + ", ".join(map(repr, NGramModel.SMOOTHINGS)))
    for sm in smoothings:
        check_choice(sm, "smoothing", NGramModel.SMOOTHINGS)
    make = {}
    if pad:
        for n in orders:
            fitted = NGramModel(n, vocab, smoothings[0], k, True, discount).fit(train)
            make[n] = fitted.restricted
    else:
        fitted = NGramModel(max(orders), vocab, smoothings[0], k, False, discount).fit(train)
        make = dict.fromkeys(orders, fitted.restricted)
    table: dict[tuple[str, int], float] = {}
    best: NGramModel | None = None
    for sm in smoothings:
        for n in orders:
            m = make[n](n, sm)
            table[sm, n] = m.nats_per_char(val)
            if best is None or table[sm, n] < table[best.smoothing, best.n]:
                best = m
    return best, table


# ----------------------------------------------------------------------------- sampling
def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one next token per row from ``softmax(logits / temperature)`` (07 "Sampling").

    - ``temperature`` (> 0) divides the logits: below 1 sharpens the distribution,
      above 1 flattens it; as it goes to 0 the draw becomes the argmax (greedy).
    - ``top_k`` keeps only the k most likely tokens.
    - ``top_p`` (nucleus sampling, Holtzman et al. 2020) keeps the smallest set of
      most likely tokens whose probability reaches p.

    Args:
        logits: (B, V) unnormalised log-probabilities (``-inf`` allowed).
        generator: a ``torch.Generator`` on ``logits``' device, for reproducible draws.

    Returns:
        (B,) int64 token ids.
    """
    check_tensor(logits, "logits", shape=(None, None), floating=True)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0 (use a small value such as "
                         f"1e-3 for greedy decoding), got {temperature!r}")
    logits = logits.detach().double() / temperature
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1 (or None), got {top_k!r}")
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None:
        if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass of the tokens ranked above
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


# ----------------------------------------------------------------------------- reporting
def results_table(results: Mapping[str, Mapping[str, float]], digits: int = 3) -> str:
    """A plain-text table: one row per model, nats/char and perplexity per split.

    Args:
        results: ``{model: {split: nats_per_char}}``, e.g.
            ``{"uniform": {"shakespeare": 4.382, "names": 3.296}}``; a missing
            split prints as "-".
    """
    if not results:
        raise ValueError("results is empty: nothing to tabulate")
    splits = list(dict.fromkeys(s for row in results.values() for s in row))
    width = max(len("model"), *map(len, results))
    head = f"{'model':<{width}}" + "".join(f" | {s + ' nats':>16} | {'ppl':>7}" for s in splits)
    lines = [head, "-" * len(head)]
    for name, row in results.items():
        cells = []
        for s in splits:
            v = row.get(s)
            cells.append(f" | {v:>16.{digits}f} | {math.exp(v):>7.2f}" if v is not None
                         else f" | {'-':>16} | {'-':>7}")
        lines.append(f"{name:<{width}}" + "".join(cells))
    return "\n".join(lines)


# ------------------------------------------------------------------- sample metrics
def _strings(samples, name: str) -> list[str]:
    if isinstance(samples, str):
        raise TypeError(f"{name} must be a sequence of strings, got one string; wrap it: [text]")
    samples = list(samples)
    if not samples:
        raise ValueError(f"{name} is empty")
    bad = [s for s in samples if not isinstance(s, str)]
    if bad:
        raise TypeError(f"{name} must hold strings; got {type(bad[0]).__name__} {bad[0]!r}")
    return samples


def _ngram_list(samples: Sequence[str], n: int) -> list[str]:
    """Every character n-gram inside each string (none crosses from one string to the next)."""
    return [s[i : i + n] for s in samples for i in range(len(s) - n + 1)]


def distinct_n(samples: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): distinct character n-grams / all n-grams of the samples.

    1 when no n-gram repeats, small for repetitive samples. It grows less than linearly
    with the amount of text, so compare sets of the same size (same number of samples).
    """
    samples = _strings(samples, "samples")
    check_positive(n, "n", integer=True)
    grams = _ngram_list(samples, n)
    if not grams:
        raise ValueError(f"no sample has {n} or more characters: distinct-{n} is undefined")
    return len(set(grams)) / len(grams)


def ngram_novelty(samples: Sequence[str], training: Sequence[str], n: int) -> float:
    """Share of the samples' character n-grams (with repeats) that never occur in ``training``.

    0 for a model that only recombines n-grams it has seen; held-out real text gives the
    level to expect from a model that generalises (it is not 0: new text has new n-grams).
    """
    samples, training = _strings(samples, "samples"), _strings(training, "training")
    check_positive(n, "n", integer=True)
    grams = _ngram_list(samples, n)
    if not grams:
        raise ValueError(f"no sample has {n} or more characters: n-gram novelty is undefined")
    seen = set(_ngram_list(training, n))
    return sum(g not in seen for g in grams) / len(grams)


def copy_share(samples: Sequence[str], training: Sequence[str]) -> float:
    """Share of samples that are exact copies of a training string (e.g. a training name)."""
    samples, training = _strings(samples, "samples"), _strings(training, "training")
    seen = set(training)
    return sum(s in seen for s in samples) / len(samples)
