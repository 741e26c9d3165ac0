"""A small training run that works the same in one process and under ``torchrun``.

It is what the torchrun test and the "scaling up" appendix launch::

    python -m course_utils.train_ddp --model vae --out runs/one            # one process
    torchrun --nproc_per_node 2 -m course_utils.train_ddp --model vae --out runs/two

Every process trains with the course's own function (``vae.train_vae`` on
MNIST, or ``lm.train_lm`` with a transformer on Shakespeare) on the *global*
batch size given, each taking its shard (:mod:`course_utils.distributed`),
then writes ``rank<r>.pt`` into ``--out``: its final parameters, its loss
history and its wall time. Rank 0 prints a one-line summary.

:func:`launch` starts such a run from Python (one process, or ``torchrun`` on the
CPU with gloo) and reads the ranks' files back.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from course_utils import distributed
from course_utils.devices import seed_everything

MODELS = ("vae", "lm")


def _train_vae(args, device) -> dict:
    from course_utils import vae
    from course_utils.data import load_mnist

    x, _ = load_mnist("train", device=device)
    x = x[: args.n_train]
    model = vae.VAE(hidden=args.hidden, latent_dim=20).to(device)
    hist = vae.train_vae(model, x, epochs=args.epochs, batch_size=args.batch_size,
                         progress=False, seed=args.seed)
    return {"model": model, "loss": hist["loss"], "unit": "nats per image"}


def _train_lm(args, device) -> dict:
    from course_utils import lm
    from course_utils.data import load_shakespeare
    from course_utils.text import CharVocab

    text = load_shakespeare()[: args.n_train]
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text, device)
    model = lm.TransformerLanguageModel(len(vocab), context=args.seq_len, d_model=args.hidden,
                                        n_heads=4, n_layers=2).to(device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    hist = lm.train_lm(model, ids, steps=args.steps, batch_size=args.batch_size,
                       seq_len=args.seq_len, log_every=1, generator=gen, progress=False)
    return {"model": model, "loss": hist["train"], "unit": "nats per character"}


def launch(out: str | os.PathLike, args: list[str], processes: int = 1, threads: int = 1,
           omp_wait: str | None = "PASSIVE", timeout: float = 600) -> dict:
    """Run ``python -m course_utils.train_ddp --out OUT *args`` on the CPU and read the results.

    With ``processes > 1`` the run goes through ``torchrun --standalone`` (gloo), each
    process with ``threads`` CPU threads. ``omp_wait="PASSIVE"`` lets idle OpenMP threads
    sleep instead of spinning, which matters on a machine whose cores are shared.

    Returns:
        ``{"ranks": [rank 0's dict, ...], "seconds": the slowest rank's training time,
        "wall": seconds for the whole launch, "printed": rank 0's summary line}``.

    Raises:
        RuntimeError: the run failed (with the end of its output).
    """
    out = Path(out)
    package_root = str(Path(__file__).resolve().parent.parent)  # found without pip install
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), COURSE_DEVICE="cpu",
               CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]))
    env.pop("OMP_WAIT_POLICY", None)
    if omp_wait:
        env["OMP_WAIT_POLICY"] = omp_wait
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     "--nproc_per_node", str(processes)]
    cmd = [*launcher, "-m", "course_utils.train_ddp", "--out", str(out), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"train_ddp with {processes} process(es) failed:\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    ranks = [torch.load(out / f"rank{r}.pt") for r in range(processes)]
    return {"ranks": ranks, "seconds": max(r["seconds"] for r in ranks), "wall": wall,
            "printed": proc.stdout.strip()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=MODELS, default="vae")
    ap.add_argument("--out", type=Path, required=True, help="folder for rank<r>.pt")
    ap.add_argument("--batch-size", type=int, default=128, help="the GLOBAL batch size")
    ap.add_argument("--epochs", type=int, default=1, help="VAE epochs")
    ap.add_argument("--steps", type=int, default=20, help="language-model steps")
    ap.add_argument("--n-train", type=int, default=10_000, help="images or characters used")
    ap.add_argument("--hidden", type=int, default=400, help="VAE hidden width / LM d_model")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    device = distributed.init()
    seed_everything(args.seed)  # the same seed on every rank: same init, same global batches
    start = time.perf_counter()
    result = (_train_vae if args.model == "vae" else _train_lm)(args, device)
    seconds = time.perf_counter() - start
    model = result.pop("model")
    result.update(seconds=seconds, world_size=distributed.world_size(), rank=distributed.rank(),
                  params={k: v.detach().cpu() for k, v in model.state_dict().items()})
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(result, args.out / f"rank{distributed.rank()}.pt")
    if distributed.is_main():
        print(f"{args.model}: {distributed.world_size()} process(es), {seconds:.1f} s, "
              f"final loss {result['loss'][-1]:.4f} {result['unit']}")
    distributed.shutdown()
    return result


if __name__ == "__main__":
    main()
