"""Run configurations: frozen dataclasses from YAML/JSON with dotted ``key=value`` overrides.

A configuration is validated when it is built: an unknown key names its path and close
matches, a value out of range names the field, the allowed range and the value. The
resolved configuration is saved in every run directory and the run id is a hash of it.

Keys (all optional; the defaults are the study's settings)::

    seed: 0
    data:      {name: dsprites_full, source: official}   # + pairs: {sampler: dlib, k: 1} for the weak objectives
    model:     {architecture: conv, num_latent: 10, reconstruction: bernoulli, kernel_size_34: 2,
                channels_last: true}
    objective: {name: beta_vae, beta: 1.0}        # the objective's own hyperparameters
    train:     {steps: 300000, batch_size: 64, lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8,
                checkpoint_every: 5000, log_every: 100, eval_batches: 1000, optimizer: tf1_adam,
                precision: float32}                 # bfloat16: mixed precision, an option for speed
    supervision: {num_labelled_samples: 1000, train_percentage: 0.9, labeller: perfect}
                                                  # the semi-supervised objectives only (docs/semi.md)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ParameterError, UnknownNameError, check, check_choice, check_float, check_int, close_matches, message


class ConfigError(ParameterError):
    """A configuration key or value is wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class PairsConfig:
    """Pairs of observations for the weakly-supervised objectives (``data.pairs``; docs/weak.md).

    ``sampler``: ``dlib`` (the reference code's dynamics, the default) or ``paper`` (Section 5
    as written); ``k``: how many factors a pair changes, in ``[1, d - 1]``, or ``-1`` for a
    ``k`` drawn per pair (the paper's k = Rnd). See :mod:`disentangled.data.pairs`.
    """

    sampler: str = "dlib"
    k: int = 1

    def __post_init__(self):
        from .data.pairs import SAMPLERS

        check_choice("data.pairs.sampler", self.sampler, SAMPLERS, error=ConfigError)
        check_int("data.pairs.k", self.k, error=ConfigError)  # its range depends on the data set: DataConfig


def _pairs(value) -> PairsConfig:
    if isinstance(value, PairsConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"data.pairs must be a mapping with keys sampler and k (or null for single observations), "
                          f"got {value!r}; for example data.pairs.k=1")
    known = [f.name for f in fields(PairsConfig)]
    for key in value:
        if key not in known:
            raise ConfigError(f"unknown configuration key 'data.pairs.{key}'; known: {known}." + close_matches(str(key), known))
    return PairsConfig(**dict(value))


@dataclass(frozen=True)
class DataConfig:
    name: str = "dsprites_full"
    source: str = "official"
    #: pairs of observations (weak supervision); None: single observations, the unsupervised methods' data
    pairs: PairsConfig | None = None

    def __post_init__(self):
        from .data import DATASETS, options_of

        _registered("data.name", DATASETS, self.name)
        if "source" in options_of(self.name):
            from .data.dsprites import SOURCES

            check_choice("data.source", self.source, SOURCES, error=ConfigError)
        if self.pairs is not None:
            from .data import get
            from .data.pairs import check_pairs

            object.__setattr__(self, "pairs", _pairs(self.pairs))
            check_pairs(self.pairs.k, self.pairs.sampler, get(self.name, **self.options()), error=ConfigError)

    def options(self) -> dict:
        from .data import options_of

        return {"source": self.source} if "source" in options_of(self.name) else {}


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "conv"
    num_latent: int = 10
    reconstruction: str = "bernoulli"
    kernel_size_34: int = 2
    channels_last: bool = True  # conv only: the same model and maths in a faster memory layout

    def __post_init__(self):
        from .models import ARCHITECTURES
        from .models.losses import RECONSTRUCTION_LOSSES

        _registered("model.architecture", ARCHITECTURES, self.architecture)
        check_choice("model.reconstruction", self.reconstruction, list(RECONSTRUCTION_LOSSES), error=ConfigError)
        _check_int("model.num_latent", self.num_latent, 1)
        check("model.channels_last", self.channels_last, lambda v: isinstance(v, bool), "true or false", error=ConfigError)
        check("model.kernel_size_34", self.kernel_size_34, lambda v: v in (2, 4), "2 (the released code) or 4 (the paper)",
              error=ConfigError)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 300_000
    batch_size: int = 64
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    checkpoint_every: int = 5000
    log_every: int = 100
    eval_batches: int = 1000
    optimizer: str = "tf1_adam"  # the reference's update; "torch_adam" is torch.optim.Adam's (docs/training.md)
    precision: str = "float32"  # the reference's; "bfloat16" is mixed precision, an option for speed (train.precision)

    def __post_init__(self):
        _check_int("train.steps", self.steps, 1)
        _check_int("train.batch_size", self.batch_size, 2, why="the covariance and total-correlation estimates need two samples")
        _check_int("train.checkpoint_every", self.checkpoint_every, 1)
        _check_int("train.log_every", self.log_every, 1)
        _check_int("train.eval_batches", self.eval_batches, 0)
        from .train.optim import OPTIMIZERS

        check_choice("train.optimizer", self.optimizer, OPTIMIZERS, error=ConfigError)
        from .train.precision import PRECISIONS

        check_choice("train.precision", self.precision, list(PRECISIONS), error=ConfigError)
        _check_float("train.lr", self.lr, 0.0, strict=True)
        _check_float("train.eps", self.eps, 0.0, strict=True)
        for name in ("beta1", "beta2"):
            check_float(f"train.{name}", getattr(self, name), low=0.0, high=1.0, high_open=True, error=ConfigError)


#: Each labeller setting of the supervision section and the labeller it belongs to.
LABELLER_SETTINGS = {"num_bins": "bin", "prob_random": "noisy", "num_observed_factors": "partial"}


@dataclass(frozen=True)
class SupervisionConfig:
    """The labelled data of a semi-supervised run (``supervision``; docs/semi.md).

    ``num_labelled_samples`` examples are drawn once, from the run's own labelled-set seed
    (``seed``, or one derived from the run's seed when unset), and labelled by ``labeller``
    (``perfect``, ``bin`` with ``num_bins``, ``noisy`` with ``prob_random``, ``permuted``,
    ``partial`` with ``num_observed_factors``); the first ``ceil(n * train_percentage)``
    train, the rest validate. Training reads the training part in order, repeated (as the
    reference does); ``shuffle`` reads each pass in a fresh random order instead.
    """

    num_labelled_samples: int = 1000
    train_percentage: float = 0.9
    labeller: str = "perfect"
    num_bins: int | None = None  # bin only (default 5)
    prob_random: float | None = None  # noisy only (default 0.1)
    num_observed_factors: int | None = None  # partial only (default 2)
    shuffle: bool = False
    seed: int | None = None

    def __post_init__(self):
        from .data.labelled import LABELLERS

        _check_int("supervision.num_labelled_samples", self.num_labelled_samples, 2,
                   why="the labelled set is split into a training and a validation part")
        check_float("supervision.train_percentage", self.train_percentage, low=0.0, high=1.0, low_open=True,
                    why="the share of the labelled set that trains", error=ConfigError)
        object.__setattr__(self, "train_percentage", float(self.train_percentage))
        _registered("supervision.labeller", LABELLERS, self.labeller)
        for key, owner in LABELLER_SETTINGS.items():
            value = getattr(self, key)
            if value is not None and owner != self.labeller:
                raise ConfigError(f"supervision.{key} must be unset for the labeller {self.labeller!r} (it is a setting "
                                  f"of the {owner!r} labeller), got {value!r}; remove it, or set supervision.labeller={owner}")
        try:
            labeller = LABELLERS.build(self.labeller, **self.labeller_options())
        except ParameterError as err:
            raise ConfigError(f"supervision: {err}") from err
        for key, owner in LABELLER_SETTINGS.items():  # the labeller's defaults, written out (they land in config.json)
            if owner == self.labeller:
                value = getattr(labeller, key)
                object.__setattr__(self, key, float(value) if key == "prob_random" else value)
        check("supervision.shuffle", self.shuffle, lambda v: isinstance(v, bool), "true or false", error=ConfigError)
        if self.seed is not None:
            check_int("supervision.seed", self.seed, low=0, high=2**32 - 1, why="a numpy RandomState seed",
                      fix="or leave it unset to derive one from the run's seed", error=ConfigError)

    def labeller_options(self) -> dict:
        """The settings of the chosen labeller that are set."""
        return {k: getattr(self, k) for k, owner in LABELLER_SETTINGS.items() if owner == self.labeller and getattr(self, k) is not None}


def _supervision(value) -> SupervisionConfig | None:
    if value is None or isinstance(value, SupervisionConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"supervision must be a mapping of the labelled data's settings (or null), got {value!r}")
    known = [f.name for f in fields(SupervisionConfig)]
    for key in value:
        if key not in known:
            raise ConfigError(f"unknown configuration key 'supervision.{key}'; known: {known}." + close_matches(str(key), known))
    return SupervisionConfig(**value)


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: Mapping[str, Any] = field(default_factory=lambda: {"name": "beta_vae", "beta": 1.0})
    train: TrainConfig = field(default_factory=TrainConfig)
    supervision: SupervisionConfig | None = None  # the labelled data of the semi-supervised objectives

    def __post_init__(self):
        _check_int("seed", self.seed, 0)
        object.__setattr__(self, "objective", _resolve_objective(self.objective))
        _check_pairing(self.objective["name"], self.data)
        object.__setattr__(self, "supervision", _supervision(self.supervision))
        _check_supervision(self)

    def build_objective(self):
        from .models import get_objective

        params = dict(self.objective)
        return get_objective(params.pop("name"), **params)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["objective"] = dict(self.objective)
        if out["data"].get("pairs") is None:  # single observations: no key, so their run ids stay what they were
            out["data"].pop("pairs", None)
        if out.get("supervision", 0) is None:  # unsupervised runs: no key, so their run ids stay what they were
            del out["supervision"]
        if out["train"]["precision"] == "float32":  # the default: no key, so run ids stay what they were
            del out["train"]["precision"]
        return out

    @property
    def run_id(self) -> str:
        """A short hash of the resolved configuration."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _resolve_objective(mapping) -> dict:
    """Fill the objective's defaults and validate its hyperparameters."""
    from .models import ALL_OBJECTIVES, get_objective

    params = dict(mapping)
    name = params.pop("name", "beta_vae")
    _registered("objective.name", ALL_OBJECTIVES, name)
    try:
        objective = get_objective(name, **params)
    except ParameterError as err:
        raise ConfigError(f"objective: {err}") from err
    return {"name": name, **objective.hyperparameters()}


def _check_pairing(objective: str, data: DataConfig) -> None:
    """A weakly-supervised objective needs pairs (``data.pairs``); every other objective refuses them."""
    from .models import ALL_OBJECTIVES as OBJECTIVES  # the semi-supervised ones refuse pairs too

    weak = sorted(n for n, cls in OBJECTIVES.items() if cls.batch_kind == "pairs")
    if OBJECTIVES[objective].batch_kind == "pairs" and data.pairs is None:
        raise ConfigError(
            f"data.pairs must be set for objective {objective!r}, which trains on pairs of observations, got None; "
            f"set data.pairs.k=1 (how many factors a pair changes; -1: drawn per pair) and optionally "
            f"data.pairs.sampler=dlib|paper (docs/weak.md)"
        )
    if OBJECTIVES[objective].batch_kind != "pairs" and data.pairs is not None:
        raise ConfigError(
            f"data.pairs must be unset (null) for objective {objective!r}, which trains on single observations, "
            f"got {dataclasses.asdict(data.pairs)}; remove the data.pairs keys (or set data.pairs=null), or choose a "
            f"weakly-supervised objective ({', '.join(weak)})"
        )


def _check_supervision(config: "RunConfig") -> None:
    """A semi-supervised objective needs the supervision section, every other objective refuses it; the
    labelled columns must fit the data set and, for the losses that bind latent k to column k, the code."""
    from .data import get as get_data
    from .data.labelled import LABELLERS, label_columns
    from .models import SEMI_OBJECTIVES

    name, supervision = config.objective["name"], config.supervision
    semi = name in SEMI_OBJECTIVES
    if semi and supervision is None:
        raise ConfigError(
            f"supervision must be set for the semi-supervised objective {name!r}, got None; add a supervision section "
            f"(for example supervision.num_labelled_samples=1000 supervision.labeller=perfect; docs/semi.md)")
    if not semi and supervision is not None:
        raise ConfigError(
            f"supervision must be unset for the objective {name!r}, which learns without labels, got "
            f"{dataclasses.asdict(supervision)}; remove the section, or choose a semi-supervised objective "
            f"({', '.join(SEMI_OBJECTIVES)}; s2_vae with objective.gamma_sup=0 trains beta_vae's objective on the same stream)")
    if not semi:
        return
    num_factors = get_data(config.data.name, **config.data.options()).num_factors
    if supervision.labeller == "partial" and supervision.num_observed_factors > num_factors:
        raise ConfigError(message("supervision.num_observed_factors", f"in [1, {num_factors}], the factors of {config.data.name}",
                                  supervision.num_observed_factors))
    columns = label_columns(LABELLERS.build(supervision.labeller, **supervision.labeller_options()), num_factors)
    loss = config.objective.get("supervised_loss")
    if loss in ("l2", "xent", "embed") and columns > config.model.num_latent:
        raise ConfigError(message("model.num_latent", f">= {columns}", config.model.num_latent,
                                  why=f"the {loss} loss binds latent k to label column k of the {columns} labelled columns",
                                  fix="use more latents, fewer labelled factors (supervision.labeller=partial), or the cov loss"))


# the checks of :mod:`disentangled.errors`, raising ConfigError
def _check_int(key, value, low, why=""):
    check_int(key, value, low=low, why=why, error=ConfigError)


def _check_float(key, value, low, strict=False):
    check_float(key, value, low=low, low_open=strict, error=ConfigError)


def _registered(key: str, registry, name) -> None:
    """Refuse a name the registry does not know, naming the configuration key it came from."""
    try:
        registry[name]
    except UnknownNameError as err:
        raise ConfigError(f"{key}: {err}") from None


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def from_dict(raw: Mapping[str, Any]) -> RunConfig:
    """Build a RunConfig from nested plain data, naming unknown keys with close matches."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a configuration must be a mapping of sections, got {type(raw).__name__}")
    top = {f.name for f in fields(RunConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in top:
            raise ConfigError(f"unknown configuration key {key!r}; known: {sorted(top)}." + close_matches(str(key), sorted(top)))
        if key in _SECTIONS:
            cls = _SECTIONS[key]
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key} must be a mapping, got {value!r}")
            known = [f.name for f in fields(cls)]
            for sub in value:
                if sub not in known:
                    raise ConfigError(f"unknown configuration key '{key}.{sub}'; known: {known}." + close_matches(str(sub), known))
            kwargs[key] = cls(**{k: _coerce(cls, k, v) for k, v in value.items()})
        elif key == "objective":
            if not isinstance(value, Mapping):
                raise ConfigError(f"objective must be a mapping with a name, got {value!r}")
            kwargs[key] = dict(value)
        elif key == "supervision":
            kwargs[key] = _supervision(value)
        else:
            kwargs[key] = value
    return RunConfig(**kwargs)


def _coerce(cls, key, value):
    """YAML reads 1e-4 as a string; accept numbers written that way for float fields."""
    ftype = {f.name: f.type for f in fields(cls)}[key]
    if ftype in ("float", float) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if ftype in ("float", float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: ``1e30`` and ``1.0e-4`` are numbers, not strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def yaml_load(text: str):
    """YAML (or JSON) text as plain data; the one YAML reader of configurations and study specs."""
    return yaml.load(text, Loader=_Loader)


def parse_overrides(pairs: list[str]) -> dict:
    """``["train.steps=300", "objective.beta=4"]`` -> nested dict (values parsed as YAML)."""
    nested: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} must look like key=value (for example train.steps=1000)")
        key, text = pair.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {pair!r}: empty key part")
        value = yaml_load(text) if text.strip() else ""
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {pair!r} conflicts with an earlier override of {part!r}")
        node[parts[-1]] = value
    return nested


def merge(base: Mapping, overrides: Mapping) -> dict:
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            if key == "objective" and "name" in value and value["name"] != out[key].get("name"):
                out[key] = dict(value)  # a new objective starts from its own defaults
            else:
                out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML/JSON file (or start from the defaults) and apply ``key=value`` overrides."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"configuration file {str(path)!r} does not exist")
        try:
            raw = yaml_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML/JSON ({err})") from err
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: a configuration file must be a mapping of sections (seed, data, model, objective, "
                              f"train), got a {type(raw).__name__}; see docs/training.md")
    return from_dict(merge(raw, parse_overrides(overrides or [])))


def diff(a: RunConfig, b: RunConfig) -> list[str]:
    """Dotted keys whose values differ between two configurations."""
    fa, fb = _flatten(a.to_dict()), _flatten(b.to_dict())
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


flatten = _flatten
