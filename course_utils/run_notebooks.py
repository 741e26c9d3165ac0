"""The course's main job: execute every lecture end to end with papermill.

    python -m course_utils.run_notebooks                 # profile chosen for this machine
    python -m course_utils.run_notebooks --profile full  # lecture-quality budgets
    python -m course_utils.run_notebooks --only 01       # one lecture

Executed copies and ``report.md`` (notebook, status, wall time) go to
``output/<profile>/`` (git ignores ``output/``). The default profile is
``full`` when a CUDA GPU is present and ``smoke`` otherwise, overridable by
``--profile`` or ``$COURSE_PROFILE``; the report and the console say which ran.
The exit status is 1 if any notebook failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from course_utils.checks import check_choice
from course_utils.profiles import PROFILE_ENV, PROFILES, default_profile

REPO = Path(__file__).resolve().parent.parent


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The lecture notebooks in ``folder`` (``NN_*.ipynb``), sorted; ``only`` filters by prefix."""
    nbs = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        nbs = [p for p in nbs if any(p.name.startswith(o) for o in only)]
    return nbs


def run_notebook(path: Path, out_dir: Path, profile: str, timeout: int) -> tuple[str, float, str]:
    """Run one notebook with papermill; return ``(status, seconds, message)``."""
    import papermill as pm

    check_choice(profile, "profile", PROFILES)
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path),
            str(out_dir / path.name),
            parameters={"PROFILE": profile},
            cwd=str(path.parent),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=timeout,
        )
        return "ok", time.perf_counter() - start, ""
    except Exception as e:  # report every failure, keep running the others
        msg = str(e).strip().splitlines()
        return "FAILED", time.perf_counter() - start, (msg[-1] if msg else type(e).__name__)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", choices=PROFILES, default=None,
                    help="budget for every notebook (default: full with a GPU, smoke without)")
    ap.add_argument("--notebooks", type=Path, default=REPO / "notebooks")
    ap.add_argument("--out", type=Path, default=REPO / "output")
    ap.add_argument("--only", nargs="*", help="run only notebooks whose names start with these")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = ap.parse_args(argv)

    if args.profile:
        why = "chosen with --profile"
    elif os.environ.get(PROFILE_ENV):
        why = f"from ${PROFILE_ENV}"
    else:
        gpu = "with" if default_profile() == "full" else "without"
        why = f"the default on a machine {gpu} a CUDA GPU"
    profile = args.profile or default_profile()
    os.environ[PROFILE_ENV] = profile  # the notebooks' resolve_profile() sees the same choice
    notebooks = find_notebooks(args.notebooks, args.only)
    if not notebooks:
        print(f"no notebooks matching NN_*.ipynb in {args.notebooks}", file=sys.stderr)
        return 1
    out_dir = args.out / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"Running {len(notebooks)} notebook(s) with profile '{profile}' ({why}) -> {out_dir}")

    rows, total = [], time.perf_counter()
    for nb in notebooks:
        print(f"  {nb.name} ...", end=" ", flush=True)
        status, seconds, msg = run_notebook(nb, out_dir, profile, args.timeout)
        print(f"{status} ({seconds:.1f} s){' - ' + msg if msg else ''}", flush=True)
        rows.append((nb.name, status, seconds, msg))
    total = time.perf_counter() - total

    lines = [
        f"# Course run: profile `{profile}`",
        "",
        "| notebook | status | wall time (s) | note |",
        "| --- | --- | ---: | --- |",
        *[f"| {n} | {s} | {t:.1f} | {m} |" for n, s, t, m in rows],
        "",
        f"Total: {total:.1f} s for {len(rows)} notebook(s); profile `{profile}` ({why}).",
    ]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(s == "ok" for _, s, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
