"""The benchmark of the course engine against the tutorial pipeline (course_utils/bench.py)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets, transforms

import course_utils as cu
from course_utils import bench
from course_utils.data import export_mnist_idx, write_idx

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_writes_every_model_and_pipeline(tmp_path):
    out = tmp_path / "tmp.json"
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils.bench", "--quick", "--json", str(out),
         "--cache-dir", str(tmp_path / "mnist")],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tutorial/engine" in proc.stdout and "total wall time" in proc.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "quick" and report["repeats"] == 2
    assert report["environment"]["torch"] == torch.__version__
    results = report["results"]
    assert set(results) == set(bench.MODELS)
    for name, r in results.items():
        for pipeline in bench.PIPELINES:
            p = r[pipeline]
            assert len(p["s_per_step"]) == 2, (name, pipeline)
            assert 0 < p["min_s_per_step"] <= p["median_s_per_step"] <= p["max_s_per_step"]
            assert math.isfinite(p["median_s_per_step"]) and p["throughput"] > 0
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0, name
    epoch = results["vae"]["epoch_seconds"]
    assert results["vae"]["steps_per_epoch"] == 469
    assert epoch["engine"] > 0 and epoch["tutorial"] > 0


def test_export_mnist_idx_round_trips_through_torchvision(tmp_path):
    root = export_mnist_idx(tmp_path, limit=50)
    for split, train in (("train", True), ("test", False)):
        tv = datasets.MNIST(str(root), train=train, download=False,
                            transform=transforms.ToTensor())
        x, y = cu.load_mnist(split, limit=50)
        assert len(tv) == 50
        assert torch.equal(torch.stack([tv[i][0] for i in range(50)]), x)
        assert [tv[i][1] for i in range(50)] == y.tolist()
    # the IDX header: magic 0x0803 (unsigned bytes, 3 dimensions), then 50, 28, 28 big-endian
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    assert images.read_bytes()[:16] == bytes.fromhex("00000803" "00000032" "0000001c" "0000001c")
    # files of the right size are kept (a cache); a different limit rewrites them
    before = images.stat().st_mtime_ns
    export_mnist_idx(tmp_path, limit=50)
    assert images.stat().st_mtime_ns == before
    export_mnist_idx(tmp_path, limit=20)
    assert len(datasets.MNIST(str(root), train=True, download=False)) == 20


def test_write_idx_rejects_what_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="uint8 array with 1 to 3 dimensions, got dtype float32"):
        write_idx(tmp_path / "x", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(1, 1, 1, 1\)"):
        write_idx(tmp_path / "x", np.zeros((1, 1, 1, 1), dtype=np.uint8))


def test_unknown_model_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--models", "vae,gan"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model 'gan'; expected one of 'vae', 'dcgan', 'gru', 'transformer'" in err
    with pytest.raises(ValueError, match="unknown model 'gan'"):
        bench.run_benchmark(["vae", "gan"])
    # both spellings of a list are accepted
    assert bench.parse_args(["--models", "gru", "vae,gru"]).models == ["gru", "vae"]


def test_summary_ratio_and_vae_epoch():
    case = bench.Case("vae", 128, None, torch.nn.Linear(1, 1), lambda m, n: None,
                      lambda m: lambda: None)
    summary = bench.summarize(case, bench.Budget(10, 1),
                              {"engine": [0.02, 0.01, 0.03], "tutorial": [0.05, 0.04, 0.09]})
    assert summary["ratio"] == pytest.approx(2.5)  # medians 0.05 / 0.02
    assert summary["engine"]["throughput"] == pytest.approx(128 / 0.02)
    assert summary["epoch_seconds"]["tutorial"] == pytest.approx(469 * 0.05)
    table = bench.format_table({"vae": summary})
    assert "2.50x" in table and "one 60,000-image epoch" in table
