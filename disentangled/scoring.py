"""Score your own model from Python: :func:`score` (any encoder, any metric, any data set).

::

    from disentangled import score
    scores = score(encoder, "dsprites_full", source="procedural", metrics=["mig", "fairness"], device="cuda")

``encoder`` is a ``torch.nn.Module`` or any function from images (float32 ``[N, C, H, W]``
in [0, 1], the layout of every data set here) to codes ``[N, D]``. A module may return the
codes, a tuple whose first element is the codes (the mean of a Gaussian encoder), or be a
model with an ``encode`` method (the models of this package). It runs on ``device`` in
batches, without gradients; a function is called as it is.

The scores are the same as ``disentangled evaluate``'s for the same representation: the same
metrics, settings and seeds (the study's, those of the ``mean`` representation), returned as
plain floats keyed like the project's result files; with ``out`` the same JSON records are
written to ``out/metrics/mean/<metric>.json``. :func:`score_udr` scores several encoders
against each other with UDR, which needs their means and log-variances.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import ParameterError


class EncoderFunction:
    """Images -> codes (numpy float32) through a module on a device, or a plain function.

    ``deterministic``: whether equal images get equal codes (lets the evaluation encode each
    distinct image once); true for a module in eval mode and assumed for a function.
    """

    def __init__(self, encoder, *, device=None, batch_size: int | None = None, deterministic: bool = True,
                 gaussian: bool = False):
        import torch

        from .train.represent import default_batch_size, resolve_device

        self.deterministic = bool(deterministic)
        self.gaussian = gaussian
        self.device = resolve_device(device)
        self.is_module = isinstance(encoder, torch.nn.Module)
        if not self.is_module and not callable(encoder):
            raise ParameterError(f"encoder must be a torch.nn.Module or a function from images to codes, got {type(encoder).__name__}")
        self.encoder = encoder.to(self.device).eval() if self.is_module else encoder
        self.batch_size = batch_size or default_batch_size(self.device)

    def _forward(self, x):
        encode = getattr(self.encoder, "encode", None)
        return encode(x) if callable(encode) else self.encoder(x)

    def __call__(self, observations: np.ndarray):
        if not self.is_module:
            out = self.encoder(observations)
            if self.gaussian:
                return tuple(np.asarray(_numpy(part)) for part in out)
            return _numpy(out[0] if isinstance(out, (tuple, list)) else out)
        import torch

        x = torch.as_tensor(np.asarray(observations, dtype=np.float32))
        parts: list[list] = []
        with torch.no_grad():
            for start in range(0, x.shape[0], self.batch_size):
                y = self._forward(x[start : start + self.batch_size].to(self.device))
                y = tuple(y) if isinstance(y, (tuple, list)) else (y,)
                if self.gaussian and len(y) < 2:
                    raise ParameterError("UDR needs a Gaussian encoder: the module must return (mean, logvar)")
                y = y[:2] if self.gaussian else y[:1]
                if not parts:
                    parts = [[] for _ in y]
                for store, tensor in zip(parts, y):
                    if not isinstance(tensor, torch.Tensor):
                        raise ParameterError(f"the encoder must return tensors, got {type(tensor).__name__}")
                    store.append(tensor.reshape(tensor.shape[0], -1).float().cpu())
        if not parts:
            return np.zeros((0, 0), np.float32)
        arrays = [torch.cat(store).numpy() for store in parts]
        return tuple(arrays) if self.gaussian else arrays[0]


def _numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def score(
    encoder,
    dataset,
    *,
    metrics: Iterable[str] | None = None,
    settings: dict[str, dict] | None = None,
    device=None,
    progress: bool = True,
    out: str | Path | None = None,
    seed: int | None = None,
    deterministic: bool = True,
    source: str | None = None,
    data_dir: str | Path | None = None,
    batch_size: int | None = None,
    n_jobs: int | None = None,
) -> dict[str, float]:
    """Score ``encoder`` on ``dataset`` with ``metrics``; ``{"mig.discrete_mig": 0.21, ...}`` as plain floats.

    ``dataset``: a registered name (``disentangled list datasets``; ``source`` and ``data_dir``
    as on the command line) or a data set object. ``metrics``: names from
    ``disentangled list metrics`` (default: the study's nine); ``settings`` overrides their
    settings (``{"mig": {"num_train": 1000}}``). ``device``: where a module runs ("cpu",
    "cuda", "cuda:1"; default the CPU). ``progress``: a progress bar over the metrics.
    ``out``: a folder to write ``metrics/mean/<metric>.json`` into, the records
    ``disentangled evaluate`` writes. ``seed``: derive the evaluation seeds from it instead of
    using the study's (which are the same for every model).
    """
    from tqdm import tqdm

    from . import __version__, data as data_module
    from . import evaluate as ev
    from .io import write_json_atomic
    from .rundir import RunDir

    if isinstance(dataset, str):
        options = {}
        if source is not None:
            options["source"] = source
        if data_dir is not None:
            options["data_dir"] = str(data_dir)
        data = data_module.get(dataset, **options)
    else:
        data = dataset
    representation = EncoderFunction(encoder, device=device, batch_size=batch_size, deterministic=deterministic)
    names = ev._metric_list(metrics, ev.M.STUDY_METRICS)
    seeds = None if seed is None else {n: ev.metric_seed("mean", n, model_seed=seed, seed_per_model=True) for n in names}
    folder = RunDir(out) if out is not None else None
    bar = tqdm(total=len(names), desc="scoring", unit="metric", disable=not progress)
    scores: dict[str, float] = {}

    def done(name: str, record: dict) -> None:
        scores.update(record["scores"])
        if folder is not None:
            write_json_atomic(folder.metric_file("mean", name), {
                **record, "representation": "mean", "encoded_on": representation.device.type,
                "seed_policy": "study" if seed is None else "per_model", "data": data.describe(),
                "package_version": __version__,
            })
        bar.set_postfix_str(f"{name} {record['elapsed_s']:.1f} s")
        bar.update(1)

    from .metrics.sampling import resolve_cache

    shared = resolve_cache(data, representation, None if deterministic else False)  # each distinct image encoded once
    with bar:
        for name in names:  # one at a time, so the bar shows which metric is running
            bar.set_description(f"scoring {name}")
            ev.evaluate_representation(data, representation, metrics=[name], seeds=seeds, settings=settings,
                                       n_jobs=n_jobs, on_result=done, cache=shared)
    return {key: float(value) for key, value in scores.items()}


def score_udr(
    encoders: Sequence,
    dataset,
    *,
    settings: dict | None = None,
    device=None,
    seed: int = 0,
    source: str | None = None,
    data_dir: str | Path | None = None,
) -> dict:
    """UDR of several Gaussian encoders (images -> ``(mean, logvar)``) against each other.

    Returns ``model_scores`` (a float per encoder, in order),
    ``pairwise_disentanglement_scores`` and ``reasons`` (see :func:`disentangled.metrics.udr_scores`).
    """
    from . import data as data_module
    from .metrics import UDR

    if isinstance(dataset, str):
        options = {k: v for k, v in (("source", source), ("data_dir", None if data_dir is None else str(data_dir))) if v is not None}
        data = data_module.get(dataset, **options)
    else:
        data = dataset
    wrapped = [EncoderFunction(e, device=device, gaussian=True) for e in encoders]
    start = time.perf_counter()
    result = UDR(**(settings or {})).evaluate(data, wrapped, rng=np.random.RandomState(seed))
    result["elapsed_s"] = round(time.perf_counter() - start, 3)
    return result


__all__ = ["EncoderFunction", "score", "score_udr"]
