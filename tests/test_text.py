import math

import pytest
import torch

from course_utils.text import (
    BOUNDARY,
    CharVocab,
    NGramModel,
    best_ngram,
    copy_share,
    distinct_n,
    names_split,
    names_to_tensors,
    ngram_novelty,
    results_table,
    sample_next,
    shakespeare_split,
)

ABC = CharVocab(".ab")


def test_vocab_round_trip_and_unknown_characters():
    v = CharVocab.from_text("hello world")
    assert v.itos == [" ", "d", "e", "h", "l", "o", "r", "w"]
    ids = v.encode("hold")
    assert ids.dtype == torch.int64 and ids.tolist() == [3, 5, 4, 1]
    assert v.decode(ids) == "hold"
    assert CharVocab.from_text("ba", extra=".").itos == [".", "a", "b"]
    with pytest.raises(ValueError, match=r"outside the vocabulary: 'Z', 'x'; the vocabulary has 8"):
        v.encode("xZ")
    with pytest.raises(ValueError, match="empty corpus"):
        CharVocab.from_text("")
    with pytest.raises(ValueError, match=r"ids must be in 0..7, got \[8\]"):
        v.decode([8])


def test_the_course_splits_are_fixed():
    train, val = shakespeare_split()
    assert (len(train), len(val)) == (1_144_634, 127_182)
    assert val.startswith("ly let us prepare")
    tn, vn, tl, vl = names_split()
    assert (len(tn), len(vn)) == (4647, 516) and not set(tn) & set(vn)
    assert vn[:3] == names_split()[1][:3]  # seeded: the same every call
    assert len(tl) == len(tn) and set(vl) == {"female", "male"}
    with pytest.raises(ValueError, match="corpus is empty"):
        shakespeare_split("")


def test_names_to_tensors_pads_targets_with_ignore_index():
    v = CharVocab.from_text("abc", extra=BOUNDARY)
    x, y = names_to_tensors(["ab", "c"], v)
    assert x.tolist() == [[0, 1, 2], [0, 3, 0]]
    assert y.tolist() == [[1, 2, 0], [3, 0, -100]]
    with pytest.raises(ValueError, match="outside the vocabulary: 'z'"):
        names_to_tensors(["az"], v)


def test_ngram_counts_on_a_tiny_corpus_by_hand():
    # "abab" padded for a bigram: ".abab." -> bigrams .a ab ba ab b.
    m = NGramModel(2, ABC, smoothing="add_k", k=1.0, pad=True).fit(["abab"])
    assert m.ngrams[1] == {".a": 1, "ab": 2, "ba": 1, "b.": 1}
    assert m.contexts[1]["a"] == 2 and m.followers[1]["b"] == 2
    # add-one: P(b | a) = (2 + 1) / (2 + 3), P(. | a) = (0 + 1) / (2 + 3)
    assert m.prob("b", "a") == pytest.approx(3 / 5)
    assert m.prob(".", "a") == pytest.approx(1 / 5)
    # an unseen context gets the uniform distribution
    assert m.prob("a", ".") == pytest.approx((1 + 1) / (1 + 3))


def test_witten_bell_by_hand():
    m = NGramModel(2, ABC, smoothing="interpolated").fit(["aab"])
    # unigram: counts a=2, b=1, total 3, 2 distinct; P1(x) = (c(x) + 2 * 1/3) / (3 + 2)
    p1 = {"a": (2 + 2 / 3) / 5, "b": (1 + 2 / 3) / 5, ".": (2 / 3) / 5}
    # bigram after "a": aa=1, ab=1, c(a)=2, 2 distinct followers
    assert m.prob("b", "a") == pytest.approx((1 + 2 * p1["b"]) / (2 + 2))
    # context "b" was never followed by anything: back off to the unigram
    assert m.prob(".", "b") == pytest.approx(p1["."])


def test_kneser_ney_by_hand():
    d = 0.5
    m = NGramModel(2, ABC, smoothing="kneser_ney", discount=d).fit(["aab"])
    # the unigram level counts continuations: bigrams aa, ab, so N1+(.a) = N1+(.b) = 1,
    # total 2, 2 distinct; P1(x) = (max(N1+(.x) - d, 0) + d * 2 * 1/3) / 2
    p1 = {"a": (1 - d + 2 * d / 3) / 2, "b": (1 - d + 2 * d / 3) / 2, ".": (2 * d / 3) / 2}
    assert p1 == pytest.approx({"a": 5 / 12, "b": 5 / 12, ".": 1 / 6})
    # (raw counts a=2, b=1 would favour a; continuation counts make them equal)
    # bigram after "a" (occurrence counts): aa=1, ab=1, c(a)=2, 2 distinct followers
    assert m.prob("b", "a") == pytest.approx((1 - d + d * 2 * p1["b"]) / 2)  # 11/24
    assert m.prob(".", "a") == pytest.approx((d * 2 * p1["."]) / 2)  # 1/12
    # context "b" was never followed by anything: the unigram level passes through
    assert m.prob(".", "b") == pytest.approx(p1["."])
    # an order-1 Kneser-Ney model is absolute discounting of the raw counts
    u = NGramModel(1, ABC, smoothing="kneser_ney", discount=d).fit(["aab"])
    assert u.prob("a", "") == pytest.approx((2 - d + d * 2 / 3) / 3)


@pytest.mark.parametrize("smoothing", ["add_k", "interpolated", "kneser_ney"])
def test_ngram_probabilities_sum_to_one(smoothing):
    v = CharVocab.from_text("the cat sat on the mat")
    m = NGramModel(3, v, smoothing=smoothing, k=0.5).fit(["the cat sat on the mat"])
    for ctx in ["", "t", "th", "zz"[:0] + "at", "mt"]:  # "mt", "zz..": unseen contexts
        p = m.probs(ctx)
        assert p.shape == (len(v),) and float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    total, count = m.nll(["the mat"])
    assert count == 7 and total > 0


@pytest.mark.parametrize("discount", [0.1, 0.75, 0.99])
def test_kneser_ney_sums_to_one_padded_and_restricted(discount):
    names = ["ab", "ba", "aab", "abb", "bab"]
    m = NGramModel(3, ABC, "kneser_ney", pad=True, discount=discount).fit(names)
    for ctx in ["..", ".a", "ab", "bb", "aa", "b"]:
        assert float(m.probs(ctx).sum()) == pytest.approx(1.0, abs=1e-12)
    assert all(BOUNDARY not in s for s in m.sample(generator=torch.Generator().manual_seed(0)))
    # restricted(): same numbers as a fresh fit, and the continuation counts are shared
    text = "abba abab baab " * 3
    v = CharVocab.from_text(text)
    big = NGramModel(5, v, "interpolated").fit([text])
    r3, r4 = big.restricted(3, "kneser_ney", discount=discount), big.restricted(4, "kneser_ney")
    fresh = NGramModel(3, v, "kneser_ney", discount=discount).fit([text])
    assert r3.nats_per_char(["abab ba"]) == pytest.approx(fresh.nats_per_char(["abab ba"]),
                                                          abs=1e-12)
    assert r3._cont[0][0] is r4._cont[0][0] and len(r3._cont[0]) == 2
    assert r4.discount == 0.75 and float(r4.probs("ab ").sum()) == pytest.approx(1.0)


def test_kneser_ney_bad_discount():
    for d in [0, 1, 1.5, -0.1, True, "0.5"]:
        with pytest.raises(ValueError, match="discount must be a number with 0 < discount < 1"):
            NGramModel(2, ABC, "kneser_ney", discount=d)
    m = NGramModel(3, ABC).fit(["abab"])
    with pytest.raises(ValueError, match="discount must be"):
        m.restricted(2, "kneser_ney", discount=1.0)


def test_best_ngram_sweeps_and_picks_the_lowest_validation_loss():
    text = "abcabcabcabd abcab cabcd " * 8
    v = CharVocab.from_text(text)
    model, table = best_ngram([text[:150]], [text[150:]], v, orders=range(1, 5))
    assert set(table) == {(s, n) for s in ("add_k", "interpolated", "kneser_ney")
                          for n in (1, 2, 3, 4)}
    assert table[model.smoothing, model.n] == min(table.values())
    assert model.nats_per_char([text[150:]]) == table[model.smoothing, model.n]
    # the candidates are the same numbers as models fitted on their own
    alone = NGramModel(2, v, "kneser_ney").fit([text[:150]]).nats_per_char([text[150:]])
    assert table["kneser_ney", 2] == pytest.approx(alone, abs=1e-12)
    assert table["add_k", 3] == NGramModel(3, v, "add_k").fit([text[:150]]).nats_per_char(
        [text[150:]])
    # padded (names): fitted per order
    names = ["anna", "bob", "abba", "ada", "bab", "nan", "dan", "oda"]
    m, t = best_ngram(names[:6], names[6:], CharVocab(".abdno"), orders=[1, 3],
                      smoothings=["kneser_ney", "interpolated"], pad=True)
    assert m.pad and m.n in (1, 3) and set(t) == {(s, n) for s in ("kneser_ney", "interpolated")
                                                  for n in (1, 3)}
    assert t["interpolated", 3] == pytest.approx(
        NGramModel(3, CharVocab(".abdno"), pad=True).fit(names[:6]).nats_per_char(names[6:]))


def test_best_ngram_bad_inputs():
    with pytest.raises(TypeError, match="train must be a list of str"):
        best_ngram("abab", ["ab"], ABC)
    with pytest.raises(TypeError, match="val must be a list of str"):
        best_ngram(["abab"], "ab", ABC)
    with pytest.raises(ValueError, match="orders is empty"):
        best_ngram(["abab"], ["ab"], ABC, orders=[])
    with pytest.raises(ValueError, match="every order must be a positive int, got 0"):
        best_ngram(["abab"], ["ab"], ABC, orders=[0, 1])
    with pytest.raises(ValueError, match="unknown smoothing 'witten_bell'"):
        best_ngram(["abab"], ["ab"], ABC, smoothings=["witten_bell"])
    with pytest.raises(ValueError, match="smoothings is empty"):
        best_ngram(["abab"], ["ab"], ABC, smoothings=[])


def test_smoothing_and_order_effects():
    text = "abcabcabcabcabd" * 5
    v = CharVocab.from_text(text)
    unsmoothed_like = NGramModel(3, v, "add_k", k=1e-6).fit([text])
    smoothed = NGramModel(3, v, "add_k", k=1.0).fit([text])
    # tiny k: the seen continuation gets almost all the mass, an unseen one almost none
    assert unsmoothed_like.prob("c", "ab") > smoothed.prob("c", "ab")
    assert unsmoothed_like.prob("a", "ab") < 1e-5 < smoothed.prob("a", "ab")
    # a longer context is better on text like the training text
    big = NGramModel(3, v, "interpolated").fit([text])
    assert big.nats_per_char([text]) < big.restricted(1).nats_per_char([text])


def test_ngram_uniform_and_unigram_values():
    v = CharVocab.from_text("aabc")
    m = NGramModel(1, v, "add_k", k=1.0).fit(["aab"])
    # unigram add-one: P(a) = 3/6, P(b) = 2/6, P(c) = 1/6
    assert m.nats_per_char(["abc"]) == pytest.approx(-(math.log(3 / 6) + math.log(2 / 6)
                                                      + math.log(1 / 6)) / 3)


def test_ngram_bad_inputs():
    with pytest.raises(ValueError, match="corpus is empty"):
        NGramModel(2, ABC).fit([""])
    with pytest.raises(ValueError, match="corpus is empty"):
        NGramModel(2, ABC).fit([])
    with pytest.raises(ValueError, match="outside the vocabulary: 'z'"):
        NGramModel(2, ABC).fit(["abz"])
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        NGramModel(0, ABC)
    with pytest.raises(ValueError, match="unknown smoothing 'kneser'"):
        NGramModel(2, ABC, smoothing="kneser")
    with pytest.raises(RuntimeError, match="call fit"):
        NGramModel(2, ABC).prob("a", "")
    m = NGramModel(2, ABC).fit(["abab"])
    with pytest.raises(ValueError, match="outside the vocabulary: 'q'"):
        m.sample(5, prompt="q")
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        m.sample(5, prompt="a", temperature=0)


def test_ngram_sample_is_reproducible_and_names_end():
    names = ["ab", "ba", "aab", "abb"]
    m = NGramModel(3, ABC, pad=True).fit(names)
    a = [m.sample(generator=torch.Generator().manual_seed(s)) for s in range(5)]
    b = [m.sample(generator=torch.Generator().manual_seed(s)) for s in range(5)]
    assert a == b and all(BOUNDARY not in s and len(s) <= 50 for s in a)


def test_sample_next_probabilities_temperature_and_greedy():
    logits = torch.tensor([[1.0, 3.0, 2.0, -1.0], [0.0, 0.0, 5.0, 0.0]])
    assert sample_next(logits, temperature=1e-6).tolist() == [1, 2]  # T -> 0: argmax
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits[:1].repeat(4000, 1), 1.0, generator=g)
    freq = torch.bincount(draws, minlength=4).float() / 4000
    assert torch.allclose(freq, logits[0].softmax(0), atol=0.03)  # frequencies match softmax
    # top-k = 1 is greedy; top-k = 2 never draws outside the two best
    assert sample_next(logits, 5.0, top_k=1).tolist() == [1, 2]
    drawn = set(sample_next(logits[:1].repeat(200, 1), 5.0, top_k=2, generator=g).tolist())
    assert drawn == {1, 2}
    # top-p: 0.5 of [0.665, 0.245, 0.09] keeps only the first
    lp = torch.tensor([[2.0, 1.0, 0.0]])
    assert set(sample_next(lp.repeat(50, 1), 1.0, top_p=0.5, generator=g).tolist()) == {0}
    assert set(sample_next(lp.repeat(200, 1), 1.0, top_p=0.8, generator=g).tolist()) == {0, 1}
    # seeded draws are reproducible
    s1 = sample_next(logits.repeat(50, 1), generator=torch.Generator().manual_seed(3))
    s2 = sample_next(logits.repeat(50, 1), generator=torch.Generator().manual_seed(3))
    assert torch.equal(s1, s2)


def test_sample_next_bad_inputs():
    logits = torch.zeros(1, 3)
    for t in [0, -1.0, "hot"]:
        with pytest.raises(ValueError, match="temperature must be a number > 0"):
            sample_next(logits, temperature=t)
    with pytest.raises(ValueError, match="top_k must be an int >= 1"):
        sample_next(logits, top_k=0)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        sample_next(logits, top_p=1.5)
    with pytest.raises(ValueError, match=r"logits must have shape \(N, N\), got \(3,\)"):
        sample_next(torch.zeros(3))


def test_results_table():
    table = results_table({"uniform": {"shakespeare": math.log(80), "names": math.log(27)},
                           "gru": {"shakespeare": 1.5}})
    assert "80.00" in table and "27.00" in table and table.splitlines()[-1].endswith("-")
    with pytest.raises(ValueError, match="empty"):
        results_table({})


def test_sample_metrics_by_hand():
    samples = ["abab", "abc"]  # bigrams: ab ba ab | ab bc -> 5 in all, 3 distinct
    assert distinct_n(samples, 2) == pytest.approx(3 / 5)
    assert distinct_n(samples, 1) == pytest.approx(3 / 7)
    assert distinct_n(["aaaa"], 2) == pytest.approx(1 / 3)
    # training bigrams ab, bx: of the samples' five bigrams, ba and bc are new
    assert ngram_novelty(samples, ["abx"], 2) == pytest.approx(2 / 5)
    assert ngram_novelty(samples, samples, 3) == 0.0
    assert copy_share(["anna", "bob", "anna", "zed"], ["anna", "carl"]) == pytest.approx(0.5)
    # n-grams never cross from one string to the next: "ab" + "ba" has no "bb"
    assert ngram_novelty(["bb"], ["ab", "ba"], 2) == 1.0


def test_sample_metrics_bad_inputs():
    with pytest.raises(TypeError, match="got one string"):
        distinct_n("abc", 2)
    with pytest.raises(ValueError, match="samples is empty"):
        copy_share([], ["a"])
    with pytest.raises(ValueError, match="no sample has 5 or more characters"):
        distinct_n(["ab", "abc"], 5)
    with pytest.raises(TypeError, match="must hold strings"):
        ngram_novelty(["ab", 3], ["ab"], 2)
    with pytest.raises(ValueError, match="n must be a positive int"):
        ngram_novelty(["ab"], ["ab"], 0)
