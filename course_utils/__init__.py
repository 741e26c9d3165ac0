"""course_utils: the reusable engine behind the Generative Models course.

The notebooks in ``notebooks/`` tell the story; this package holds the code
they share.  One concept per module:

- :mod:`course_utils.devices`    device choice, seeding/determinism, version report
- :mod:`course_utils.profiles`   the smoke/full budget switch
- :mod:`course_utils.data`       bundled datasets (checksummed) and on-device batches
- :mod:`course_utils.checkpoint` atomic state_dict checkpoints
- :mod:`course_utils.resume`     resume files: an interrupted training continues where it stopped
- :mod:`course_utils.plotting`   image grids, 2-D scatter/density, training curves
- :mod:`course_utils.checks`     argument validation with clear error messages
- :mod:`course_utils.toy`        toy 1-D/2-D mixtures and mode-coverage metrics (lecture 02)
- :mod:`course_utils.gan`        GAN losses, models and training (lectures 02, 03)
- :mod:`course_utils.classifier` the course's MNIST classifier, to measure samples (03, 09)
- :mod:`course_utils.vae`        VAE/CVAE models, loss, training, likelihood estimates (04, 05)
- :mod:`course_utils.text`       characters, the fixed splits, n-gram models, sampling (06-08)
- :mod:`course_utils.lm`         GRU and transformer language models and their training (07, 08)
- :mod:`course_utils.metrics`    MSE, KL, perplexity, IS, FID, precision/recall... (09, 10)
- :mod:`course_utils.unet`       the small U-Net of the diffusion and flow models (lecture 12)
- :mod:`course_utils.diffusion`  noise schedules, losses, DDPM/DDIM/flow samplers, guidance (12)
- :mod:`course_utils.finetune`   freezing, LoRA and parameter counts for fine-tuning (13)
- :mod:`course_utils.pixel`      a PixelCNN for binarised MNIST: exact likelihood, sampling (13)
- :mod:`course_utils.engine`     the training loops' switches: fused Adam, channels_last, compile
- :mod:`course_utils.distributed` data-parallel training under ``torchrun`` (appendix 11)
- :mod:`course_utils.train_ddp`  a small run for one process or torchrun (tests, appendix 11)
- :mod:`course_utils.bench`      ``python -m course_utils.bench``: engine vs tutorial pipeline
- :mod:`course_utils.run_notebooks`  the course's main job (papermill over every lecture)

The model families are imported by name (``from course_utils import vae``);
the core helpers below are re-exported here (``cu.load_mnist``, ``cu.show_images``...).
"""

from course_utils.checkpoint import CheckpointError, load_checkpoint, load_or_train, save_checkpoint
from course_utils.data import (
    DataFileError,
    batches,
    dataset_names,
    load_dataset,
    load_mnist,
    load_names,
    load_shakespeare,
)
from course_utils.devices import environment_report, get_device, seed_everything
from course_utils.plotting import (
    plot_curves,
    plot_function_2d,
    plot_samples_density,
    scatter_2d,
    show_images,
    use_course_style,
)
from course_utils.profiles import PROFILES, resolve_profile

__version__ = "0.1.0"

__all__ = [
    "PROFILES",
    "CheckpointError",
    "DataFileError",
    "batches",
    "dataset_names",
    "environment_report",
    "get_device",
    "load_checkpoint",
    "load_dataset",
    "load_mnist",
    "load_names",
    "load_or_train",
    "load_shakespeare",
    "plot_curves",
    "plot_function_2d",
    "plot_samples_density",
    "resolve_profile",
    "save_checkpoint",
    "scatter_2d",
    "seed_everything",
    "show_images",
    "use_course_style",
]
