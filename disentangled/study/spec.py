"""Study specs: a base configuration, a sweep, seeds and an evaluation stage, as data (YAML).

::

    name: quickstart
    description: ...
    base: {data: {name: dsprites_full, source: procedural}, train: {steps: 2000}}
    sweep: {product: [{sweep: {objective.beta: [1, 16]}}, {sweep: {seed: [0, 1]}}]}
    evaluation:
      representations: [mean, sampled]
      seed_per_model: false  # default: the same seeds for every model (the study's convention)
      metrics: {mig: {}, dci: {num_train: 1000, num_test: 500}}

``SPEC`` on the command line is a preset name (``disentangled/presets/*.yaml``) or a path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..config import ConfigError, RunConfig, from_dict, merge, yaml_load
from ..errors import ParameterError, UnknownNameError, close_matches
from ..evaluate import EvaluationProtocol
from ..registry import Registry
from ..rundir import MetricKey
from .sweep import SpecError, expand, nest

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
SPEC_KEYS = ("name", "description", "base", "sweep", "evaluation")
EVAL_KEYS = ("representations", "metrics", "seed_per_model", "seeds", "seed_table", "num_eval", "sample_sizes",
             "unswept_seeds", "validation")
VALIDATION_KEYS = ("metrics", "draw", "labels")
DEFAULT_SEED_TABLE = "unsupervised_study_v1"


def _whole(path: Path) -> list[str]:
    return []  # a preset is taken as written; a spec file of one's own changes it


def _load_preset(path: Path) -> StudySpec:
    return load_spec(path)


# the presets are the YAML files shipped in PRESETS_DIR, listed once when the package loads
PRESETS = Registry("study preset", {p.stem: p for p in sorted(PRESETS_DIR.glob("*.yaml"))},
                   options=_whole, build=_load_preset)


def presets() -> list[str]:
    return list(PRESETS)


@dataclass(frozen=True)
class EvaluationSpec:
    """Representations x metrics (with settings overriding the study's defaults), and how they are computed.

    Seeds follow the study's convention by default: every model is evaluated with the same
    seeds (one per representation and metric), so all models are scored on the same sampled
    data; ``seeds: per_model`` (or the older ``seed_per_model: true``) also mixes in each
    model's seed, and ``seeds: jmlr`` draws the model's training seed and its evaluation
    seeds from one stream per model, as the JMLR version of the study does (the sweep's
    ``seed`` is then that pipeline's ``random_seed``). ``seed_table`` names the reference
    study whose seeds are used (``disentangled.evaluate.SEED_TABLES``): ``fairness_study_v1``
    draws them as that study does, shifted by its tenth metric. ``num_eval`` repeats every
    evaluation with distinct seeds; ``sample_sizes`` computes a metric at each of several
    ``num_train`` values instead of its own (:class:`~disentangled.evaluate.EvaluationProtocol`).
    """

    representations: tuple[str, ...] = ("mean", "sampled")
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    protocol: EvaluationProtocol = field(default_factory=EvaluationProtocol)
    validation: "ValidationSpec | None" = None

    @property
    def seed_per_model(self) -> bool:
        return self.protocol.seeds == "per_model"

    @property
    def seed_table(self) -> str:
        return self.protocol.seed_table

    def keys(self) -> list[MetricKey]:
        """Every evaluation of a run, in the order the JMLR pipeline draws their seeds."""
        return self.protocol.keys(self.representations, self.metrics)

    def settings(self, key: MetricKey) -> dict:
        """The settings of one evaluation: the spec's for its metric, with its sample size bound."""
        return self.protocol.settings(key, self.metrics.get(key.metric))


@dataclass(frozen=True)
class ValidationSpec:
    """Validation scores on labelled sets (``evaluation.validation``; docs/semi.md).

    ``metrics``: the validation forms (``mig``, ``dci``, ``sap``, ``unified``). ``draw``:
    ``training`` (the reference's: the labelled set a run trains on) or ``disjoint``.
    ``labels``: the label counts at which runs without a supervision section of their own
    (the unsupervised ones) are validated, with the base's ``supervision`` settings; a
    semi-supervised run is validated at its own count. Default: the base's count.
    """

    metrics: tuple[str, ...] = ("mig", "dci", "sap")
    draw: str = "training"
    labels: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        out = {"metrics": list(self.metrics), "draw": self.draw}
        if self.labels is not None:
            out["labels"] = list(self.labels)
        return out


@dataclass(frozen=True)
class StudySpec:
    name: str
    base: Mapping[str, Any]
    sweep: Mapping[str, Any]
    evaluation: EvaluationSpec
    description: str = ""

    @cached_property
    def settings(self) -> list[dict]:
        return expand(self.sweep)

    def __len__(self) -> int:
        return len(self.settings)

    def run_config(self, model_num: int) -> RunConfig:
        if not 0 <= model_num < len(self):
            raise SpecError(f"--model-num must be in 0..{len(self) - 1} for study {self.name!r}, got {model_num}")
        setting = self.settings[model_num]
        try:
            merged = merge(self.base, nest(setting))
            if self.evaluation.protocol.seeds == "jmlr":  # the sweep's seed is the pipeline's, which draws the model's
                merged["seed"] = self.evaluation.protocol.model_seed(self._random_seed(merged, model_num))
            return from_dict(merged)
        except ConfigError as err:
            raise SpecError(f"study {self.name!r}, model_num {model_num} ({setting}): {err}") from err

    def random_seed(self, model_num: int) -> int | None:
        """The JMLR pipeline's ``random_seed`` of run ``model_num`` (``seeds: jmlr``; None otherwise)."""
        if self.evaluation.protocol.seeds != "jmlr":
            return None
        return self._random_seed(merge(self.base, nest(self.settings[model_num])), model_num)

    def _random_seed(self, merged: Mapping, model_num: int) -> int:
        seed = merged.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise SpecError(f"study {self.name!r}, model_num {model_num}: with evaluation.seeds: jmlr the seed is the "
                            f"pipeline's random_seed, an integer in [0, 2**32), got {seed!r}")
        return seed

    def run_configs(self) -> list[RunConfig]:
        """Every run's configuration, validated; refuses runs that would collide."""
        configs = [self.run_config(n) for n in range(len(self))]
        seen: dict[str, int] = {}
        for n, c in enumerate(configs):
            if c.run_id in seen:
                raise SpecError(
                    f"study {self.name!r}: model_num {seen[c.run_id]} and {n} resolve to the same configuration "
                    f"({self.settings[n]}); add the distinguishing key (for example a seed) to the sweep"
                )
            seen[c.run_id] = n
        return configs

    def to_dict(self) -> dict:
        ev = self.evaluation
        p = ev.protocol
        evaluation = {"representations": list(ev.representations), "metrics": {k: dict(v) for k, v in ev.metrics.items()},
                      "seed_per_model": ev.seed_per_model}
        # the newer keys are written only when set, so older specs keep their digest
        if p.seed_table != DEFAULT_SEED_TABLE:
            evaluation["seed_table"] = p.seed_table
        if p.seeds == "jmlr":
            evaluation["seeds"] = p.seeds
            evaluation["unswept_seeds"] = p.unswept_seeds
        if p.num_eval != 1:
            evaluation["num_eval"] = p.num_eval
        if p.sample_sizes:
            evaluation["sample_sizes"] = {m: list(v) for m, v in p.sample_sizes.items()}
        if ev.validation is not None:  # likewise
            evaluation["validation"] = ev.validation.to_dict()
        return {"name": self.name, "description": self.description, "base": dict(self.base), "sweep": self.sweep,
                "evaluation": evaluation}

    def validation_supervision(self) -> dict:
        """The supervision settings that runs without their own are validated with: the base's section."""
        base = self.base.get("supervision")
        if not isinstance(base, Mapping):
            raise SpecError(f"study {self.name!r}: evaluation.validation needs base.supervision (the labelled sets' "
                            f"settings) to validate runs without labels of their own, got {base!r}; add a base "
                            "supervision section, for example {num_labelled_samples: 100, labeller: perfect}")
        return dict(base)

    def validation_counts(self, model_num: int) -> list[int]:
        """The label counts run ``model_num`` is validated at: its own count, or ``evaluation.validation.labels``."""
        v = self.evaluation.validation
        if v is None:
            return []
        config = self.run_config(model_num)
        if config.supervision is not None:
            return [config.supervision.num_labelled_samples]
        if v.labels is not None:
            return list(v.labels)
        return [int(self.validation_supervision().get("num_labelled_samples", 1000))]

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def load_spec(spec: str | Path) -> StudySpec:
    """A preset name or a YAML path -> validated StudySpec."""
    path = Path(spec)
    if not path.suffix and not path.exists():
        try:
            path = PRESETS[str(spec)]
        except UnknownNameError as err:
            raise SpecError(f"{err} Or give the path of a YAML spec.") from None
    if not path.is_file():
        raise SpecError(f"study spec {str(path)!r} does not exist; give a preset name ({', '.join(presets())}) or a YAML path")
    try:
        raw = yaml_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML ({err})") from err
    return from_mapping(raw, source=str(path))


def from_mapping(raw: Any, source: str = "spec") -> StudySpec:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{source}: a study spec is a mapping with keys {list(SPEC_KEYS)}")
    for key in raw:
        if key not in SPEC_KEYS:
            raise SpecError(f"{source}: unknown key {key!r}; known: {list(SPEC_KEYS)}." + close_matches(str(key), list(SPEC_KEYS)))
    for key in ("name", "sweep"):
        if key not in raw:
            raise SpecError(f"{source}: missing {key!r}")
    base = raw.get("base") or {}
    if not isinstance(base, Mapping):
        raise SpecError(f"{source}: base must be a mapping of configuration sections")
    ev = raw.get("evaluation") or {}
    if not isinstance(ev, Mapping):
        raise SpecError(f"{source}: evaluation must be a mapping")
    for key in ev:
        if key not in EVAL_KEYS:
            raise SpecError(f"{source}: unknown key 'evaluation.{key}'; known: {list(EVAL_KEYS)}." + close_matches(str(key), list(EVAL_KEYS)))
    metrics = ev.get("metrics") or {}
    if isinstance(metrics, list):
        metrics = {m: {} for m in metrics}
    _check_metrics(metrics, source)
    reps = tuple(ev.get("representations", ("mean", "sampled")))
    for rep in reps:
        if rep not in ("mean", "sampled"):
            raise SpecError(f"{source}: evaluation.representations: unknown {rep!r}; use mean and/or sampled")
    spec = StudySpec(
        name=str(raw["name"]), description=str(raw.get("description", "")), base=dict(base), sweep=raw["sweep"],
        evaluation=EvaluationSpec(reps, {k: dict(v or {}) for k, v in metrics.items()}, _protocol(ev, metrics, source),
                                  _validation(ev.get("validation"), source)),
    )
    try:
        spec.settings  # expand now, so a malformed sweep is reported with its path
    except SpecError as err:
        raise SpecError(f"{source}: {err}") from err
    if spec.settings:
        spec.run_config(0)  # validates the base and the first run's keys early
    if spec.evaluation.validation is not None and not isinstance(spec.base.get("supervision"), Mapping):
        for n in range(len(spec)):  # without base labels, every run must bring its own to be validated
            if spec.run_config(n).supervision is None:
                spec.validation_supervision()
    return spec


def _protocol(ev: Mapping, metrics: Mapping, source: str) -> EvaluationProtocol:
    """``seeds``, ``seed_table``, ``num_eval``, ``sample_sizes`` and ``unswept_seeds``, checked."""
    from ..evaluate import SEED_SCHEMES, SEED_TABLES, UNSWEPT_SEEDS

    seed_table = ev.get("seed_table", DEFAULT_SEED_TABLE)
    if seed_table not in SEED_TABLES:
        raise SpecError(f"{source}: evaluation.seed_table must be one of {list(SEED_TABLES)}, got {seed_table!r}."
                        + close_matches(str(seed_table), list(SEED_TABLES)))
    per_model = ev.get("seed_per_model", False)
    seeds = ev.get("seeds", "per_model" if per_model else "study")
    if seeds not in SEED_SCHEMES:
        raise SpecError(f"{source}: evaluation.seeds must be one of {list(SEED_SCHEMES)}, got {seeds!r}."
                        + close_matches(str(seeds), list(SEED_SCHEMES)))
    if per_model and seeds != "per_model":
        raise SpecError(f"{source}: evaluation.seed_per_model: true contradicts evaluation.seeds: {seeds}; keep one of them")
    unswept = ev.get("unswept_seeds", "reference")
    if unswept not in UNSWEPT_SEEDS:
        raise SpecError(f"{source}: evaluation.unswept_seeds must be one of {list(UNSWEPT_SEEDS)}, got {unswept!r}")
    if "unswept_seeds" in ev and seeds != "jmlr":
        raise SpecError(f"{source}: evaluation.unswept_seeds applies to seeds: jmlr only, got seeds: {seeds}")
    sizes = ev.get("sample_sizes") or {}
    if not isinstance(sizes, Mapping):
        raise SpecError(f"{source}: evaluation.sample_sizes must map metric names to lists of sample sizes "
                        f"(num_train values), for example {{mig: [1000, 10000]}}; got {sizes!r}")
    for name in sizes:
        if name not in metrics:
            raise SpecError(f"{source}: evaluation.sample_sizes.{name}: {name!r} is not one of evaluation.metrics "
                            f"({', '.join(metrics) or 'none'}); add it there or remove its sample sizes")
    num_eval = ev.get("num_eval", 1)
    try:
        return EvaluationProtocol(num_eval=num_eval, sample_sizes=sizes, seeds=str(seeds), seed_table=str(seed_table),
                                  unswept_seeds=str(unswept))
    except ParameterError as err:
        raise SpecError(f"{source}: evaluation.{err}") from None


def _validation(raw, source) -> ValidationSpec | None:
    """``evaluation.validation``, checked: forms, draw and label counts name the rule they break."""
    from ..train.validation import DEFAULT_FORMS, DRAWS, VALIDATION_FORMS

    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError(f"{source}: evaluation.validation must be a mapping with keys {list(VALIDATION_KEYS)}, got {raw!r}")
    for key in raw:
        if key not in VALIDATION_KEYS:
            raise SpecError(f"{source}: unknown key 'evaluation.validation.{key}'; known: {list(VALIDATION_KEYS)}."
                            + close_matches(str(key), list(VALIDATION_KEYS)))
    forms = raw.get("metrics", list(DEFAULT_FORMS))
    if isinstance(forms, str) or not isinstance(forms, (list, tuple)) or not forms:
        raise SpecError(f"{source}: evaluation.validation.metrics must be a non-empty list of {list(VALIDATION_FORMS)}, got {forms!r}")
    for form in forms:
        if form not in VALIDATION_FORMS:
            raise SpecError(f"{source}: evaluation.validation.metrics: unknown form {form!r}; known: {list(VALIDATION_FORMS)}."
                            + close_matches(str(form), list(VALIDATION_FORMS)))
    draw = raw.get("draw", "training")
    if draw not in DRAWS:
        raise SpecError(f"{source}: evaluation.validation.draw must be one of {list(DRAWS)}, got {draw!r}")
    labels = raw.get("labels")
    if labels is not None:
        if not isinstance(labels, (list, tuple)) or not labels or any(
                isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in labels):
            raise SpecError(f"{source}: evaluation.validation.labels must be a non-empty list of integers >= 2 "
                            f"(label counts; a labelled set is split in two), got {labels!r}")
        labels = tuple(sorted(set(int(n) for n in labels)))
    return ValidationSpec(tuple(dict.fromkeys(forms)), str(draw), labels)


def _check_metrics(metrics, source):
    if not isinstance(metrics, Mapping):
        raise SpecError(f"{source}: evaluation.metrics must map metric names to settings")
    from ..metrics import METRICS

    for name, settings in metrics.items():
        settings = settings or {}
        if not isinstance(settings, Mapping):
            raise SpecError(f"{source}: evaluation.metrics.{name} must map setting names to values, got {settings!r}")
        try:  # building the metric checks its settings' names and values now, not after training
            METRICS.build(name, **{str(key): value for key, value in settings.items()})
        except ParameterError as err:
            raise SpecError(f"{source}: evaluation.metrics: {err}") from None
