"""The smoke/full switch that sets every notebook's budget.

Each notebook has a cell tagged ``parameters`` (papermill's convention)::

    PROFILE = "full"

and, right after it::

    PROFILE = resolve_profile(PROFILE)
    BUDGET = {"smoke": dict(epochs=1, n_train=2_000),
              "full": dict(epochs=10, n_train=60_000)}[PROFILE]

Three ways to choose, strongest last:

1. the value written in the ``parameters`` cell (``"full"``: what students get);
2. papermill's ``-p PROFILE smoke``, which injects a cell after the parameters cell;
3. the environment variable ``COURSE_PROFILE`` (for nbval, which cannot inject
   parameters): when it is set, it wins.

Both profiles run the same code path; only the sizes differ.
"""

from __future__ import annotations

import os

from course_utils.checks import check_choice

PROFILES = ("smoke", "full")
PROFILE_ENV = "COURSE_PROFILE"


def resolve_profile(notebook_value: str = "full") -> str:
    """Return the profile to run: ``COURSE_PROFILE`` if set, else ``notebook_value``.

    Raises:
        ValueError: either value is not ``"smoke"`` or ``"full"``.
    """
    env = os.environ.get(PROFILE_ENV, "").strip()
    if env:
        return check_choice(env, f"profile in ${PROFILE_ENV}", PROFILES)
    return check_choice(notebook_value, "profile", PROFILES)


def default_profile() -> str:
    """The profile for running the whole course here: ``full`` with a GPU, ``smoke`` without.

    ``COURSE_PROFILE`` overrides it. Used by :mod:`course_utils.run_notebooks`.
    """
    import torch

    env = os.environ.get(PROFILE_ENV, "").strip()
    if env:
        return check_choice(env, f"profile in ${PROFILE_ENV}", PROFILES)
    return "full" if torch.cuda.is_available() else "smoke"
