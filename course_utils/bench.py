"""Benchmark: the course engine against the usual tutorial pipeline, step for step.

Run ``python -m course_utils.bench`` (``--quick`` for CI, ``--help`` for the options).

What is measured. For four models, the wall time of N optimizer steps, trained two ways
on the same device with the same architecture, initial weights, batch size and seed:

============ ====================================== ========= ==================================
model        architecture                           batch     data
============ ====================================== ========= ==================================
vae          ``vae.VAE()`` 784-400-20 (lecture 05)  128       MNIST (N, 1, 28, 28)
dcgan        ``gan.make_image_gan("dcgan")`` (03)   128       MNIST, rescaled to [-1, 1]
gru          ``lm.GRULanguageModel`` E=64, H=384    64 x 100  Shakespeare, random windows (07)
transformer  ``lm.TransformerLanguageModel`` 4x128  32 x 128  Shakespeare, random windows (08)
============ ====================================== ========= ==================================

(batch x sequence length as lectures 07 and 08 train them; both pipelines draw random
windows, where lecture 07 reads the GRU's windows in order: the same work per step.)

- **engine**: the course's own training functions, :func:`course_utils.vae.train_vae`,
  :func:`course_utils.gan.train_gan` and :func:`course_utils.lm.train_lm`, with the data
  already on the device: images are the first ``N * batch`` of ``load_mnist`` trained for one
  epoch (so exactly N steps), text is the encoded corpus with ``steps=N``. Batches are sliced
  on the device; losses are read back once per epoch or logging interval.
- **tutorial**: what most tutorials write. Images: ``torchvision.datasets.MNIST`` (built
  from the bundled files by :func:`course_utils.data.export_mnist_idx`) with
  ``transforms.ToTensor()`` through ``DataLoader(batch_size, shuffle=True, num_workers=0)``,
  each batch moved to the device, plain float32, a plain Adam and ``loss.item()`` every
  step. Text: each batch built in Python from the training string (random offsets, each
  character looked up in a dict, ``torch.tensor(...)`` then ``.to(device)``), plain Adam,
  ``.item()`` every step.

How. Datasets, models and loaders are built before any clock starts. Each measurement
starts from a copy of the same initial model, runs ``warmup`` untimed steps (the engine: a
separate call of its training function), synchronises the device, then times ``steps``
more steps and synchronises again (``torch.cuda.synchronize`` / ``torch.mps.synchronize``)
before reading the clock. The two pipelines alternate (engine first in even repetitions,
tutorial first in odd ones) and every repetition visits every model, so a slow spell of a
shared machine hits both. Reported: the median and min-max seconds per step over the
repetitions, the throughput at the median (images/s or characters/s), and the ratio
tutorial median / engine median (above 1: the engine is faster). For the VAE also the time
of one 60,000-image epoch (469 steps x the median step).

What the engine does differently, besides the data: on CUDA it trains in bfloat16
autocast with fused Adam (the tutorial stays in float32); the language models use AdamW
with a schedule and gradient clipping (more work per step than the tutorial's plain
Adam). On the CPU both run in float32 and, by default, on one thread (``--threads``).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import gan, lm, vae
from course_utils.checks import check_choice, check_positive
from course_utils.data import export_mnist_idx, load_mnist, load_shakespeare
from course_utils.devices import get_device, seed_everything
from course_utils.text import CharVocab, shakespeare_split

MODELS = ("vae", "dcgan", "gru", "transformer")
PIPELINES = ("engine", "tutorial")
MNIST_TRAIN = 60_000


@dataclass(frozen=True)
class Budget:
    """Timed optimizer ``steps`` per repetition, after ``warmup`` untimed ones."""

    steps: int
    warmup: int


# Chosen so that the full run takes about two minutes on the course's 2-core CPU (one
# thread) and --quick under half a minute; a GPU's steps are far shorter, so it gets more.
BUDGETS: dict[tuple[str, bool], dict[str, Budget]] = {
    ("cpu", False): {"vae": Budget(80, 10), "dcgan": Budget(12, 2),
                     "gru": Budget(5, 2), "transformer": Budget(5, 2)},
    ("cpu", True): {"vae": Budget(20, 3), "dcgan": Budget(3, 1),
                    "gru": Budget(2, 1), "transformer": Budget(2, 1)},
    ("gpu", False): {"vae": Budget(300, 30), "dcgan": Budget(100, 10),
                     "gru": Budget(50, 5), "transformer": Budget(50, 5)},
    ("gpu", True): {"vae": Budget(50, 10), "dcgan": Budget(20, 5),
                    "gru": Budget(10, 3), "transformer": Budget(10, 3)},
}


def default_cache_dir() -> Path:
    """Where the torchvision copy of MNIST is written: ``checkpoints/torchvision_mnist``
    in the repository (git-ignored, shared with lecture 05), else a temporary folder."""
    repo_cache = Path(__file__).resolve().parent.parent / "checkpoints" / "torchvision_mnist"
    try:
        repo_cache.mkdir(parents=True, exist_ok=True)
        if os.access(repo_cache, os.W_OK):
            return repo_cache
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "course_utils_torchvision_mnist"


def synchronize(device: torch.device) -> None:
    """Wait until the device has finished its queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# ----------------------------------------------------------------------------- data
@dataclass
class Data:
    """Everything both pipelines read, built once before any timing.

    images: (60000, 1, 28, 28) float32 in [0, 1] on the device (the engine's MNIST);
    mnist: torchvision's MNIST over the same images with ``ToTensor()`` (the tutorial's);
    text: the training split as a str; ids: the same as (N,) int64 on the device; vocab.
    """

    device: torch.device
    images: torch.Tensor | None = None
    mnist: object | None = None
    text: str | None = None
    ids: torch.Tensor | None = None
    vocab: CharVocab | None = None


def load_data(models: Iterable[str], device: torch.device, cache_dir: Path) -> Data:
    """Load only what ``models`` need: MNIST both ways, and/or the Shakespeare training text."""
    from torchvision import datasets, transforms

    models = list(models)
    data = Data(device)
    if {"vae", "dcgan"} & set(models):
        data.images, _ = load_mnist("train", device=device)
        root = export_mnist_idx(cache_dir)
        data.mnist = datasets.MNIST(str(root), train=True, download=False,
                                    transform=transforms.ToTensor())
    if {"gru", "transformer"} & set(models):
        text = load_shakespeare()
        data.text, _ = shakespeare_split(text)
        data.vocab = CharVocab.from_text(text)
        data.ids = data.vocab.encode(data.text, device)
    return data


def image_loader(data: Data, batch_size: int, seed: int):
    """The tutorial's loader: torchvision MNIST + ToTensor, shuffled, no worker processes."""
    from torch.utils.data import DataLoader

    return DataLoader(data.mnist, batch_size=batch_size, shuffle=True, num_workers=0,
                      generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- the cases
@dataclass
class Case:
    """One model, trained both ways.

    ``engine(model, steps)`` runs the course's training function for ``steps`` steps;
    ``tutorial(model)`` returns a function that does one tutorial step. ``model`` is a
    fresh copy of ``init`` each time.
    """

    name: str
    batch_size: int
    seq_len: int | None  # None for images
    init: nn.Module
    engine: Callable[[nn.Module, int], object]
    tutorial: Callable[[nn.Module], Callable[[], None]]
    unit: str = field(init=False)

    def __post_init__(self):
        self.unit = "images/s" if self.seq_len is None else "characters/s"

    @property
    def items_per_step(self) -> int:
        """Images, or predicted characters (B x T), per optimizer step."""
        return self.batch_size * (self.seq_len or 1)


def vae_case(data: Data, seed: int, batch_size: int = 128) -> Case:
    """The MLP VAE of lecture 05: ``train_vae`` against a DataLoader loop."""

    def engine(model, steps):
        x = data.images[: steps * batch_size]  # one epoch of exactly `steps` batches
        vae.train_vae(model, x, epochs=1, batch_size=batch_size, lr=1e-3, progress=False,
                      seed=seed)

    def tutorial(model):
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batches = iter(image_loader(data, batch_size, seed))
        losses = []

        def step():
            images, _ = next(batches)
            x = images.view(len(images), -1).to(data.device)  # (B, 784)
            logits, mu, logvar = model(x)
            loss = vae.vae_loss(logits, x, mu, logvar)[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())

        return step

    return Case("vae", batch_size, None, vae.VAE().to(data.device), engine, tutorial)


def dcgan_case(data: Data, seed: int, batch_size: int = 128) -> Case:
    """The DCGAN of lecture 03: ``train_gan`` against a DataLoader loop (D step, then G step)."""
    G, D = gan.make_image_gan("dcgan")
    pair = nn.ModuleDict({"G": G, "D": D}).to(data.device)

    def engine(pair, steps):
        x = data.images[: steps * batch_size]  # drop_last: exactly `steps` batches
        gan.train_gan(pair["G"], pair["D"], x, epochs=1, batch_size=batch_size,
                      progress=False)

    def tutorial(pair):
        G, D = pair["G"].train(), pair["D"].train()
        opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        batches = iter(image_loader(data, batch_size, seed))
        losses = []

        def step():
            images, _ = next(batches)
            real = images.to(data.device) * 2 - 1  # (B, 1, 28, 28) in [-1, 1]
            z = torch.randn(len(real), G.latent_dim, device=data.device)
            fake = G(z)
            loss_d = gan.d_loss(D(real), D(fake.detach()))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = gan.g_loss(D(fake))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            losses.append((loss_d.item(), loss_g.item()))

        return step

    return Case("dcgan", batch_size, None, pair, engine, tutorial)


def lm_case(name: str, model: nn.Module, data: Data, seed: int, batch_size: int, seq_len: int,
            weight_decay: float) -> Case:
    """A character model on Shakespeare: ``train_lm`` against batches built in Python."""

    def engine(model, steps):
        gen = torch.Generator(device=data.device).manual_seed(seed)
        lm.train_lm(model, data.ids, steps=steps, batch_size=batch_size, seq_len=seq_len,
                    lr=3e-3, weight_decay=weight_decay, generator=gen, progress=False)

    def tutorial(model):
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        text, stoi, rng = data.text, data.vocab.stoi, random.Random(seed)
        losses = []

        def step():
            starts = [rng.randrange(len(text) - seq_len - 1) for _ in range(batch_size)]
            rows = [[stoi[c] for c in text[s : s + seq_len + 1]] for s in starts]
            chunk = torch.tensor(rows).to(data.device)  # (B, T + 1) int64
            x, y = chunk[:, :-1], chunk[:, 1:]
            logits, _ = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())

        return step

    return Case(name, batch_size, seq_len, model.to(data.device), engine, tutorial)


def make_case(name: str, data: Data, seed: int) -> Case:
    """Build model ``name``'s case with its initial weights drawn from ``seed``."""
    check_choice(name, "model", MODELS)
    torch.manual_seed(seed)
    if name == "vae":
        return vae_case(data, seed)
    if name == "dcgan":
        return dcgan_case(data, seed)
    v = len(data.vocab)
    if name == "gru":  # lecture 07
        model = lm.GRULanguageModel(v, embed_dim=64, hidden_size=384)
        return lm_case(name, model, data, seed, batch_size=64, seq_len=100, weight_decay=0.0)
    model = lm.TransformerLanguageModel(v, context=128, d_model=128, n_heads=4,  # lecture 08
                                        n_layers=4, dropout=0.0)
    return lm_case(name, model, data, seed, batch_size=32, seq_len=128, weight_decay=0.1)


# ----------------------------------------------------------------------------- timing
def time_engine(case: Case, budget: Budget, device: torch.device, seed: int) -> float:
    """Seconds per step of the course engine: one warm-up call, then one timed call."""
    model = copy.deepcopy(case.init)
    torch.manual_seed(seed)
    case.engine(model, budget.warmup)
    synchronize(device)
    start = time.perf_counter()
    case.engine(model, budget.steps)
    synchronize(device)
    return (time.perf_counter() - start) / budget.steps


def time_tutorial(case: Case, budget: Budget, device: torch.device, seed: int) -> float:
    """Seconds per step of the tutorial loop, after its warm-up steps."""
    model = copy.deepcopy(case.init)
    torch.manual_seed(seed)
    step = case.tutorial(model)
    for _ in range(budget.warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(budget.steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / budget.steps


def summarize(case: Case, budget: Budget, seconds: dict[str, list[float]]) -> dict:
    """Median, min and max seconds per step, throughput and the ratio for one model."""
    out = {"batch_size": case.batch_size, "seq_len": case.seq_len, "unit": case.unit,
           "steps": budget.steps, "warmup": budget.warmup}
    for pipeline in PIPELINES:
        times = seconds[pipeline]
        median = statistics.median(times)
        out[pipeline] = {"median_s_per_step": median, "min_s_per_step": min(times),
                         "max_s_per_step": max(times), "s_per_step": times,
                         "throughput": case.items_per_step / median}
    out["ratio"] = out["tutorial"]["median_s_per_step"] / out["engine"]["median_s_per_step"]
    if case.name == "vae":
        steps_per_epoch = math.ceil(MNIST_TRAIN / case.batch_size)
        out["epoch_seconds"] = {p: steps_per_epoch * out[p]["median_s_per_step"]
                                for p in PIPELINES}
        out["steps_per_epoch"] = steps_per_epoch
    return out


def run_benchmark(models: Iterable[str] = MODELS, device: torch.device | str | None = None,
                  quick: bool = False, repeats: int | None = None, seed: int = 0,
                  cache_dir: Path | None = None, log: Callable[[str], None] | None = None
                  ) -> dict:
    """Time every model in ``models`` both ways; return ``{model: summary}`` (see :func:`main`).

    Raises:
        ValueError: an unknown model name, or ``repeats`` not a positive int.
    """
    models = list(dict.fromkeys(models))
    if not models:
        raise ValueError(f"models is empty; expected some of {', '.join(map(repr, MODELS))}")
    for name in models:
        check_choice(name, "model", MODELS)
    repeats = repeats if repeats is not None else (2 if quick else 5)
    check_positive(repeats, "repeats", integer=True)
    device = torch.device(device) if device is not None else get_device()
    budgets = BUDGETS[("cpu" if device.type == "cpu" else "gpu", quick)]
    seed_everything(seed)
    data = load_data(models, device, cache_dir or default_cache_dir())
    cases = {name: make_case(name, data, seed) for name in models}
    seconds = {name: {p: [] for p in PIPELINES} for name in models}
    timers = {"engine": time_engine, "tutorial": time_tutorial}
    for rep in range(repeats):
        order = PIPELINES if rep % 2 == 0 else PIPELINES[::-1]
        for name, case in cases.items():
            for pipeline in order:
                s = timers[pipeline](case, budgets[name], device, seed)
                seconds[name][pipeline].append(s)
                if log:
                    log(f"  repetition {rep + 1}/{repeats}  {name:<11} {pipeline:<8} "
                        f"{s * 1e3:8.2f} ms/step")
    return {name: summarize(cases[name], budgets[name], seconds[name]) for name in models}


# ----------------------------------------------------------------------------- report
def environment(device: torch.device) -> dict:
    """Device, versions, threads and load: enough to tell two runs apart."""
    import torchvision

    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        hardware = "Apple GPU (Metal)"
    else:
        hardware = platform.processor() or platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"device": device.type, "hardware": hardware, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "load_average_1min": load, "course_compile": os.environ.get("COURSE_COMPILE", ""),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def environment_line(env: dict) -> str:
    """One line: ``device cpu (x86_64) | torch ... | 1 thread(s) of 2 CPUs | load 1.9 | date``."""
    compile_note = f" | COURSE_COMPILE={env['course_compile']}" if env["course_compile"] else ""
    return (f"device {env['device']} ({env['hardware']}) | torch {env['torch']} | "
            f"torchvision {env['torchvision']} | {env['threads']} thread(s) of "
            f"{env['cpu_count']} CPUs | load average {env['load_average_1min']:.2f} | "
            f"{env['date']}{compile_note}")


def _ms(s: float) -> str:
    """Seconds as milliseconds with about three significant digits, never in e-notation."""
    ms = s * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def format_table(results: dict) -> str:
    """The results as a plain-text table, one row per model and pipeline."""
    head = (f"{'model':<11} {'pipeline':<8} {'steps':>5} {'batch':>8} {'ms/step':>9} "
            f"{'min-max ms':>13} {'throughput':>24} {'tutorial/engine':>16}")
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        batch = f"{r['batch_size']}" + (f"x{r['seq_len']}" if r["seq_len"] else "")
        for pipeline in PIPELINES:
            p = r[pipeline]
            spread = f"{_ms(p['min_s_per_step'])}-{_ms(p['max_s_per_step'])}"
            ratio = f"{r['ratio']:.2f}x" if pipeline == "tutorial" else ""
            lines.append(f"{name:<11} {pipeline:<8} {r['steps']:>5} {batch:>8} "
                         f"{_ms(p['median_s_per_step']):>9} {spread:>13} "
                         f"{p['throughput']:>11,.0f} {r['unit']:<12} {ratio:>16}".rstrip())
    if "vae" in results:
        r = results["vae"]
        e, t = r["epoch_seconds"]["engine"], r["epoch_seconds"]["tutorial"]
        lines.append(f"VAE, one 60,000-image epoch ({r['steps_per_epoch']} steps x median step): "
                     f"engine {e:.2f} s, tutorial {t:.2f} s ({t / e:.2f}x)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line
def _model_list(value: str) -> list[str]:
    names = [v for v in value.split(",") if v]
    for v in names:
        if v not in MODELS:
            raise argparse.ArgumentTypeError(
                f"unknown model {v!r}; expected one of {', '.join(map(repr, MODELS))}")
    return names


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value!r}")
    return n


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.bench",
        description="Time the course engine against the tutorial pipeline (torchvision "
                    "MNIST + DataLoader; text batches built in Python) on four models.")
    parser.add_argument("--quick", action="store_true",
                        help="few steps and 2 repetitions (CI): checks that it runs")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None,
                        help="default: course_utils.get_device() (cuda, then mps, then cpu)")
    parser.add_argument("--repeats", type=_positive_int, default=None,
                        help="repetitions of each measurement (default: 5; 2 with --quick)")
    parser.add_argument("--models", type=_model_list, nargs="+", default=[list(MODELS)],
                        metavar="MODEL", help=f"some of {', '.join(MODELS)} (default: all); "
                        "space- or comma-separated")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch CPU threads (default: 1 on the CPU, steadiest when shared; "
                             "PyTorch's default with a GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where torchvision's copy of MNIST is written (default: "
                             "checkpoints/torchvision_mnist in the repository)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results as JSON to PATH")
    parser.add_argument("--verbose", action="store_true", help="print every measurement")
    args = parser.parse_args(argv)
    args.models = list(dict.fromkeys(m for group in args.models for m in group))
    try:
        args.device = get_device(args.device)
    except (ValueError, RuntimeError) as e:
        parser.error(str(e))
    return args


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif args.device.type == "cpu":
        torch.set_num_threads(1)  # steadiest on a shared CPU; --threads 2 for all cores here
    env = environment(args.device)
    print(environment_line(env), flush=True)
    mode = "quick" if args.quick else "full"
    print(f"{mode} run, models: {', '.join(args.models)}; the pipelines alternate; "
          "datasets are built before timing", flush=True)
    results = run_benchmark(args.models, args.device, quick=args.quick, repeats=args.repeats,
                            seed=args.seed, cache_dir=args.cache_dir,
                            log=print if args.verbose else None)
    repeats = len(next(iter(results.values()))["engine"]["s_per_step"])
    print(f"median over {repeats} repetitions; ratio = tutorial median / engine median")
    print(format_table(results))
    wall = time.perf_counter() - start
    print(f"total wall time: {wall:.1f} s")
    if args.json is not None:
        report = {"environment": env, "mode": mode, "repeats": repeats, "seed": args.seed,
                  "wall_seconds": wall, "results": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
