import copy
import math

import pytest
import torch
from torch import nn

from course_utils.finetune import (
    LoRALinear,
    add_lora,
    check_vocab_subset,
    count_parameters,
    freeze_except,
    merge_lora,
)
from course_utils.lm import TransformerLanguageModel, train_lm
from course_utils.text import CharVocab

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models

VOCAB = CharVocab.from_text("abc .")
CORPUS = VOCAB.encode("abc " * 100 + "cab." * 100)
D, LAYERS = 16, 2


def _model(seed=0, n_layers=LAYERS):
    torch.manual_seed(seed)
    return TransformerLanguageModel(len(VOCAB), context=16, d_model=D, n_heads=2,
                                    n_layers=n_layers)


def _logits(m, x):
    m.eval()
    with torch.no_grad():
        return m(x)[0]


def _train(m, steps=4, weight_decay=0.5):
    return train_lm(m, CORPUS, steps=steps, batch_size=4, seq_len=8, lr=1e-2,
                    weight_decay=weight_decay, warmup=1, progress=False)


X = torch.randint(len(VOCAB), (3, 12), generator=torch.Generator().manual_seed(1))


def test_lora_at_initialisation_leaves_the_outputs_unchanged():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, rank=2, alpha=4.0)
    x = torch.randn(7, 6)
    assert torch.equal(layer(x), base(x))  # B = 0: exactly the base output
    assert torch.equal(layer.lora_B, torch.zeros(5, 2)) and layer.lora_A.abs().sum() > 0
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(6)  # Kaiming-uniform: U(+-1/sqrt(in))
    assert layer.scale == 2.0 and "rank=2, alpha=4" in repr(layer)
    m = _model()
    before = _logits(m, X)
    add_lora(m, rank=2)
    assert torch.equal(_logits(m, X), before)


def test_lora_formula_and_merge():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), rank=3, alpha=1.5)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(2, 4, 6)
    w = layer.base.weight + 0.5 * layer.lora_B @ layer.lora_A  # alpha / rank = 0.5
    assert torch.allclose(layer(x), x @ w.T + layer.base.bias, atol=1e-6)
    merged = layer.merge()
    assert type(merged) is nn.Linear and not merged.weight.requires_grad
    assert torch.allclose(merged(x), layer(x), atol=1e-6)
    nobias = LoRALinear(nn.Linear(6, 5, bias=False), rank=1)
    assert nobias.merge().bias is None


def test_trainable_counts_match_the_hand_computation():
    m = _model()
    total = count_parameters(m, trainable_only=False)
    assert count_parameters(m) == total
    rank = 4
    add_lora(m, rank)
    # per block: qkv (D -> 3D) and proj (D -> D), each rank * (in + out)
    per_block = rank * (D + 3 * D) + rank * (D + D)
    assert count_parameters(m) == LAYERS * per_block == 768
    assert count_parameters(m, trainable_only=False) == total + LAYERS * per_block
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert names == [f"blocks.{i}.attn.{t}.lora_{f}" for i in range(LAYERS)
                     for t in ("qkv", "proj") for f in "AB"]
    m2 = add_lora(_model(), 2, targets=("mlp.0", "head"))  # other targets
    assert count_parameters(m2) == LAYERS * 2 * (D + 4 * D) + 2 * (D + len(VOCAB))


def test_train_lm_moves_only_the_lora_factors_and_merges_back():
    m = _model()
    _train(m, steps=2)  # "pretraining" (it also leaves gradients behind)
    pretrained = {k: v.clone() for k, v in m.state_dict().items()}
    add_lora(m, rank=2)
    assert all(p.grad is None for p in m.parameters())  # stale gradients dropped
    a0 = [p.detach().clone() for n, p in m.named_parameters() if "lora_A" in n]
    _train(m, steps=4, weight_decay=0.5)  # weight decay must not touch the frozen weights
    for name, p in m.named_parameters():
        if "lora" not in name:
            key = name.replace(".base.", ".")
            assert torch.equal(p, pretrained[key]), name  # bit-identical
    a1 = [p for n, p in m.named_parameters() if "lora_A" in n]
    assert all(not torch.equal(x, y) for x, y in zip(a0, a1, strict=True))
    assert all(p.abs().sum() > 0 for n, p in m.named_parameters() if "lora_B" in n)
    out = _logits(m, X)
    merged = merge_lora(copy.deepcopy(m))
    assert not any(isinstance(mod, LoRALinear) for mod in merged.modules())
    assert list(merged.state_dict()) == list(pretrained)  # the original layout again
    assert torch.allclose(_logits(merged, X), out, atol=1e-6)
    assert not torch.allclose(out, _logits(_load(pretrained), X), atol=1e-4)  # it did learn


def test_train_lm_leaves_manually_frozen_weights_bit_identical():
    # train_lm hands every parameter to AdamW; frozen ones get no gradient, so AdamW skips
    # them, weight decay included, even when they still hold a gradient from earlier training
    # (train_lm sets gradients to None before its first backward pass).
    m = _model()
    _train(m, steps=2)
    m.embed.requires_grad_(False)
    m.blocks[0].requires_grad_(False)
    assert m.embed.weight.grad is not None  # a stale gradient
    before = {k: v.clone() for k, v in m.state_dict().items()}
    _train(m, steps=3, weight_decay=0.5)
    for name, p in m.named_parameters():
        assert torch.equal(p, before[name]) == (not p.requires_grad), name


def _load(state):
    m = _model()
    m.load_state_dict(state)
    return m


def test_freeze_except_trains_only_the_named_parts():
    m = _model()
    _train(m, steps=2)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    last = f"blocks.{LAYERS - 1}"
    freeze_except(m, [last, "ln", "head"])
    want = sum(p.numel() for n, p in m.named_parameters()
               if n.startswith((last + ".", "ln.", "head.")))
    assert count_parameters(m) == want > 0
    _train(m, steps=3, weight_decay=0.5)
    for name, p in m.named_parameters():
        if name.startswith((last + ".", "ln.", "head.")):
            assert not torch.equal(p, before[name]), name
        else:
            assert torch.equal(p, before[name]), name
    assert count_parameters(freeze_except(m, "head")) == D * len(VOCAB) + len(VOCAB)
    # "blocks.1" is block 1 only, not blocks 10
    big = freeze_except(_model(n_layers=11), ["blocks.1"])
    assert count_parameters(big) == count_parameters(big.blocks[1])


def test_lora_errors():
    lin = nn.Linear(4, 6)
    with pytest.raises(TypeError, match="base must be an nn.Linear, got Conv2d"):
        LoRALinear(nn.Conv2d(1, 1, 3), 1)
    with pytest.raises(ValueError, match=r"rank must be an int in 1..4 .*min\(4, 6\).*got 0"):
        LoRALinear(lin, 0)
    with pytest.raises(ValueError, match=r"rank must be an int in 1..4 .* got 5"):
        LoRALinear(lin, 5)
    for bad in (2.5, True, "2"):
        with pytest.raises(TypeError, match="rank must be an int, got"):
            LoRALinear(lin, bad)
    for bad in (float("nan"), float("inf"), 0, -1.0, "8"):
        with pytest.raises(ValueError, match="alpha must be a finite positive number, got"):
            LoRALinear(lin, 2, alpha=bad)
    assert lin.weight.requires_grad  # a failed wrap leaves the layer alone


def test_add_lora_and_freeze_except_errors():
    m = _model()
    with pytest.raises(ValueError, match=r"target 'attn.q' matches no nn.Linear layer of "
                       r"TransformerLanguageModel; its linear layers are: blocks.0.attn.qkv, "
                       r"blocks.0.attn.proj, blocks.0.mlp.0, blocks.0.mlp.2, .*, head"):
        add_lora(m, 2, targets=("attn.q",))
    with pytest.raises(ValueError, match=r"rank must be an int in 1..5 .*min\(16, 5\)"):
        add_lora(m, 8, targets=("head",))
    with pytest.raises(ValueError, match="targets is empty"):
        add_lora(m, 2, targets=())
    assert count_parameters(m) == count_parameters(m, trainable_only=False)  # untouched
    add_lora(m, 2)
    with pytest.raises(ValueError, match="already have LoRA .*call merge_lora"):
        add_lora(m, 2)
    with pytest.raises(ValueError, match=r"prefix 'block.1' selects no parameter of "
                       r"TransformerLanguageModel; its top-level names are: embed, pos, "
                       r"blocks \(blocks.0 ... blocks.1\), ln, head"):
        freeze_except(m, ["block.1"])
    with pytest.raises(ValueError, match="prefixes is empty"):
        freeze_except(m, [])
    with pytest.raises(TypeError, match="merge_lora changes a model in place"):
        merge_lora(m.blocks[0].attn.qkv)


def test_check_vocab_subset():
    ids = check_vocab_subset(VOCAB, ["cab", "ab"] + ["."])
    assert ids.tolist() == [VOCAB.stoi[c] for c in ".abc"]
    assert check_vocab_subset(VOCAB, CharVocab("c.")).tolist() == [VOCAB.stoi["c"],
                                                                   VOCAB.stoi["."]]
    assert check_vocab_subset(VOCAB, "aab").tolist() == [VOCAB.stoi["a"], VOCAB.stoi["b"]]
    with pytest.raises(ValueError, match=r"2 character\(s\) of the names are missing from the "
                       r"pretrained vocabulary: 'd', 'z'; it has 5 characters: ' .abc'"):
        check_vocab_subset(VOCAB, ["zad", "ab"], name="the names")
    with pytest.raises(TypeError, match="vocab_big must be a CharVocab, got str"):
        check_vocab_subset("abc", "a")
    with pytest.raises(TypeError, match="got an item 3 .int."):
        check_vocab_subset(VOCAB, ["a", 3])
    with pytest.raises(TypeError, match="got int"):
        check_vocab_subset(VOCAB, 3)
    with pytest.raises(ValueError, match="has no characters"):
        check_vocab_subset(VOCAB, [])
