import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.lm import (
    CausalSelfAttention,
    GRULanguageModel,
    TransformerLanguageModel,
    evaluate_lm,
    generate,
    train_lm,
)
from course_utils.text import CharVocab, names_to_tensors

VOCAB = CharVocab.from_text("abc .")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models
CORPUS = VOCAB.encode("abc " * 200)


def _uniform(model):
    """Zero the output layer: every prediction is uniform over the vocabulary."""
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    return model


def test_gru_shapes_state_and_condition():
    m = GRULanguageModel(5, embed_dim=8, hidden_size=16, num_layers=2, num_conditions=2)
    x = torch.randint(5, (3, 7))
    logits, h = m(x, None, torch.tensor([0, 1, 1]))
    assert logits.shape == (3, 7, 5) and h.shape == (2, 3, 16)
    # carrying the state over two halves equals one pass over the whole window
    cond = torch.tensor([0, 1, 1])
    a, ha = m(x[:, :4], None, cond)
    b, _ = m(x[:, 4:], ha, cond)
    assert torch.allclose(torch.cat([a, b], 1), logits, atol=1e-6)
    with pytest.raises(ValueError, match="this model is conditional: pass cond"):
        m(x)
    with pytest.raises(ValueError, match=r"cond must have shape \(3\), got \(2,\)"):
        m(x, None, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="num_conditions=0 and takes no cond"):
        GRULanguageModel(5, 8, 16)(x, None, cond)
    with pytest.raises(TypeError, match="must have dtype torch.int64, got torch.float32"):
        m(x.float(), None, cond)


def test_transformer_is_causal_and_its_attention_is_a_distribution():
    torch.manual_seed(0)
    m = TransformerLanguageModel(5, context=8, d_model=16, n_heads=2, n_layers=2).eval()
    x = torch.randint(5, (2, 8))
    x2 = x.clone()
    x2[:, 5] = (x2[:, 5] + 1) % 5
    with torch.no_grad():
        a, _ = m(x)
        b, _ = m(x2)
        logits, _, maps = m(x, return_attention=True)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6) and not torch.allclose(a[:, 5:], b[:, 5:])
    assert torch.allclose(logits, a, atol=1e-5)  # the hand-written path agrees with SDPA
    assert len(maps) == 2 and maps[0].shape == (2, 2, 8, 8)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 2, 8), atol=1e-6)
    assert (maps[1].triu(1) == 0).all()
    with pytest.raises(ValueError, match="input has 9 positions but the model's context is 8"):
        m(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="d_model .16. must be divisible by n_heads .3."):
        CausalSelfAttention(16, 3)


def test_attention_weights_match_the_formula():
    torch.manual_seed(0)
    layer = CausalSelfAttention(8, 2)
    x = torch.randn(1, 4, 8)
    _, a = layer(x, return_weights=True)
    q, k, _ = layer.qkv(x).split(8, dim=2)
    q, k = q[0, :, :4], k[0, :, :4]  # head 0
    s = q @ k.T / 2.0  # sqrt(d_head = 4)
    s = s.masked_fill(torch.ones(4, 4).triu(1).bool(), float("-inf"))
    assert torch.allclose(a[0, 0], torch.exp(s) / torch.exp(s).sum(-1, keepdim=True), atol=1e-6)


@pytest.mark.parametrize("stateful", [False, True])
def test_train_lm_learns_a_repeating_corpus(stateful):
    torch.manual_seed(0)
    m = GRULanguageModel(len(VOCAB), 8, 32)
    before = evaluate_lm(m, CORPUS[:100])
    h = train_lm(m, CORPUS, steps=60, batch_size=8, seq_len=16, lr=1e-2, stateful=stateful,
                 warmup=5, log_every=20, eval_fn=lambda: evaluate_lm(m, CORPUS[:100]),
                 eval_every=30, progress=False)
    assert h["step"] == [20, 40, 60] and h["val_step"] == [30, 60]
    assert h["train"][-1] < h["train"][0] and h["val"][-1] < 0.3 < before
    assert h["seconds"] > 0 and not m.training


def test_train_lm_on_padded_rows_with_a_condition():
    names = ["ab", "abc", "cab", "ba"] * 8
    v = CharVocab.from_text("abc", extra=".")
    x, y = names_to_tensors(names, v)
    cond = torch.tensor([0, 1, 0, 1] * 8)
    torch.manual_seed(0)
    m = TransformerLanguageModel(len(v), context=8, d_model=16, n_heads=2, n_layers=1,
                                 num_conditions=2)
    start = evaluate_lm(m, (x, y, cond))
    train_lm(m, (x, y, cond), steps=80, batch_size=16, lr=1e-2, warmup=5, progress=False)
    assert evaluate_lm(m, (x, y, cond)) < start - 0.5


def test_evaluate_lm_scores_every_target_once():
    # a uniform model scores log V per character only if each target is counted exactly once
    for model in [GRULanguageModel(len(VOCAB), 4, 8),
                  TransformerLanguageModel(len(VOCAB), context=7, d_model=8, n_heads=2, n_layers=1)]:
        _uniform(model)
        for n in [2, 9, 50, 301]:
            assert evaluate_lm(model, CORPUS[:n], chunk=16, batch_size=3) == pytest.approx(
                math.log(len(VOCAB)))
    # with a context longer than the text, the sliding window is one plain forward pass
    torch.manual_seed(0)
    m = TransformerLanguageModel(len(VOCAB), context=64, d_model=8, n_heads=2, n_layers=1).eval()
    ids = CORPUS[:40]
    with torch.no_grad():
        direct = F.cross_entropy(m(ids[None, :-1])[0][0], ids[1:]).item()
    assert evaluate_lm(m, ids) == pytest.approx(direct, rel=1e-5)
    # padded rows: the mean over real targets only
    x, y = names_to_tensors(["ab", "c"], CharVocab.from_text("abc", extra="."))
    assert evaluate_lm(_uniform(GRULanguageModel(4, 4, 8)), (x, y)) == pytest.approx(math.log(4))


def test_generate_is_reproducible_and_greedy_at_low_temperature():
    torch.manual_seed(0)
    m = GRULanguageModel(len(VOCAB), 8, 16).eval()
    a = generate(m, VOCAB, "ab", length=30, generator=torch.Generator().manual_seed(1))
    b = generate(m, VOCAB, "ab", length=30, generator=torch.Generator().manual_seed(1))
    assert a == b and len(a) == 30 and set(a) <= set(VOCAB.itos)
    # greedy by hand: always the argmax
    ids, out = VOCAB.encode("ab")[None], []
    with torch.no_grad():
        for _ in range(10):
            nxt = m(ids)[0][0, -1].argmax()
            out.append(VOCAB.itos[int(nxt)])
            ids = torch.cat([ids, nxt.view(1, 1)], 1)
    assert generate(m, VOCAB, "ab", length=10, temperature=1e-6) == "".join(out)
    assert generate(m, VOCAB, "ab", length=10, top_k=1) == "".join(out)
    # names stop at the end mark
    v = CharVocab.from_text("ab", extra=".")
    names = [generate(GRULanguageModel(3, 4, 8), v, names=True, length=20,
                      generator=torch.Generator().manual_seed(s)) for s in range(5)]
    assert all("." not in n and len(n) <= 20 for n in names)


def test_generate_bad_inputs():
    gru = GRULanguageModel(len(VOCAB), 4, 8)
    tf = TransformerLanguageModel(len(VOCAB), context=8, d_model=8, n_heads=2, n_layers=1)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        generate(gru, VOCAB, "a", length=3, temperature=0)
    with pytest.raises(ValueError, match="top_k must be an int >= 1"):
        generate(gru, VOCAB, "a", length=3, top_k=0)
    with pytest.raises(ValueError, match="prompt has characters outside the vocabulary: 'z'"):
        generate(gru, VOCAB, "az", length=3)
    with pytest.raises(ValueError, match="prompt has 9 characters but the model's context is 8"):
        generate(tf, VOCAB, "a" * 9, length=3)
    with pytest.raises(ValueError, match="give a prompt"):
        generate(gru, VOCAB, "", length=3)
    # a long generation slides the context window instead of failing
    assert len(generate(tf, VOCAB, "abc", length=20, generator=torch.Generator().manual_seed(0))) == 20


def test_train_lm_bad_inputs():
    m = GRULanguageModel(len(VOCAB), 4, 8)
    with pytest.raises(ValueError, match=r"fewer than seq_len \+ 2 = 34"):
        train_lm(m, CORPUS[:10], steps=1, seq_len=32, progress=False)
    with pytest.raises(TypeError, match="data must have dtype torch.int64"):
        train_lm(m, CORPUS.float(), steps=1, progress=False)
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        train_lm(m, CORPUS, steps=0, progress=False)
    with pytest.raises(TypeError, match="a tuple"):
        train_lm(m, [CORPUS], steps=1, progress=False)


class _RecordingGRU(GRULanguageModel):
    """A GRU language model that records whether each forward pass got a state."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.got_state = []

    def forward(self, x, state=None, cond=None):
        self.got_state.append(state is not None)
        return super().forward(x, state, cond)


@pytest.mark.parametrize("kind", ["windows", "rows"])
def test_unrelated_batches_start_from_a_zero_state(kind):
    # Random corpus windows and rows (names) are unrelated to the previous batch: the GRU
    # must start each from zeros, as it is evaluated and sampled (the state used to leak).
    torch.manual_seed(0)
    m = _RecordingGRU(len(VOCAB), embed_dim=8, hidden_size=16)
    if kind == "windows":
        data = CORPUS
    else:
        data = names_to_tensors(["abc", "cab", "ba"], VOCAB)
    train_lm(m, data, steps=4, batch_size=2, seq_len=8, warmup=1, progress=False)
    assert m.got_state == [False] * 4


def test_stateful_training_carries_the_state_between_windows():
    torch.manual_seed(0)
    m = _RecordingGRU(len(VOCAB), embed_dim=8, hidden_size=16)
    # 800 ids in 2 streams of 400: 49 windows of 8, so 4 steps never wrap around
    train_lm(m, CORPUS, steps=4, batch_size=2, seq_len=8, warmup=1, stateful=True,
             progress=False)
    assert m.got_state == [False, True, True, True]
