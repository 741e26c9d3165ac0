"""Characters as data: the vocabulary, the course's fixed splits, n-gram models and sampling.

Lecture 06 (``notebooks/06_text_before_deep_learning.ipynb``) writes the n-gram
counts and the sampling loop out by hand, then uses this module; lectures 07
and 08 reuse it for their baselines and for sampling from neural models.

- :class:`CharVocab`         characters <-> integer ids, with a clear error for unknown characters
- :func:`shakespeare_split`  the last 10% of the plays is the validation text (06, "Data")
- :func:`names_split`        a fixed, seeded 10% of the names is the validation set
- :func:`names_to_tensors`   names as padded (N, L) input/target rows for neural models (07)
- :class:`NGramModel`        character n-grams, add-k or interpolated (Witten-Bell) smoothing (06)
- :func:`sample_next`        one draw from logits with temperature, top-k and top-p (06, 07)
- :func:`results_table`      nats per character and perplexity, one row per model

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

    Two smoothings (Chen & Goodman 1998 compare many):

    - ``"add_k"``: ``(c(h x) + k) / (c(h) + k V)`` with the full context h;
      unseen contexts get the uniform distribution. Large n overfits badly.
    - ``"interpolated"`` (Witten-Bell): mix each order with the one below,
      ``P_n(x|h) = (c(h x) + u(h) P_{n-1}(x|h')) / (c(h) + u(h))``, where u(h)
      is the number of distinct characters seen after h and h' drops h's first
      character; order 0 mixes with the uniform distribution. No knob to tune.

    Sequences: ``fit(["one long text"])`` for the plays; for names use
    ``pad=True``, which wraps each sequence as ``"." * (n-1) + name + "."`` so
    the model learns how names start and end (06 "Start and end of a name").
    Where a context is shorter than n-1 (the first characters of an unpadded
    text) the model uses what it has.

    Args:
        n: the order (1 = unigram, 2 = bigram, ...).
        vocab: the characters; every fitted or scored character must be in it.
        smoothing: ``"add_k"`` or ``"interpolated"``.
        k: the pseudo-count of add-k smoothing (k > 0).
        pad: wrap sequences with the boundary mark (names).
    """

    def __init__(self, n: int, vocab: CharVocab, smoothing: str = "interpolated",
                 k: float = 1.0, pad: bool = False):
        check_positive(n, "n", integer=True)
        check_choice(smoothing, "smoothing", ("add_k", "interpolated"))
        check_positive(k, "k")
        if not isinstance(vocab, CharVocab):
            raise TypeError(f"vocab must be a CharVocab, got {type(vocab).__name__}")
        if pad and BOUNDARY not in vocab.stoi:
            raise ValueError(f"pad=True needs the boundary mark {BOUNDARY!r} in the vocabulary")
        self.n, self.vocab, self.smoothing, self.k, self.pad = n, vocab, smoothing, k, pad
        self.ngrams: list[Counter] = []  # ngrams[j]: counts of (j+1)-character strings
        self.contexts: list[Counter] = []  # contexts[j]: c(h) for j-character contexts h
        self.followers: list[Counter] = []  # followers[j]: u(h), distinct next characters

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
        return self

    def restricted(self, n: int, smoothing: str | None = None, k: float | None = None
                   ) -> NGramModel:
        """The same counts used as an order-``n`` model (n <= self.n), optionally with
        another smoothing or k: a sweep over n and smoothings counts only once."""
        check_positive(n, "n", integer=True)
        if n > self.n or (self.pad and n != self.n):
            raise ValueError(f"can restrict an order-{self.n} model to n <= {self.n}"
                             + (" (padded models: refit instead)" if self.pad else "")
                             + f", got n={n}")
        m = NGramModel(n, self.vocab, smoothing or self.smoothing,
                       self.k if k is None else k, self.pad)
        m.ngrams, m.contexts, m.followers = self.ngrams[:n], self.contexts[:n], self.followers[:n]
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
        p = 1.0 / v  # order "-1": uniform
        for j in range(len(h) + 1):  # contexts "", h[-1:], h[-2:], ..., h
            hj = h[len(h) - j:]
            total = self.contexts[j][hj]
            if total:
                u = self.followers[j][hj]
                p = (self.ngrams[j][hj + char] + u * p) / (total + u)
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
