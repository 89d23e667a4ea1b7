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
from ..registry import Registry
from .sweep import SpecError, expand, nest

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
SPEC_KEYS = ("name", "description", "base", "sweep", "evaluation")
EVAL_KEYS = ("representations", "metrics", "seed_per_model", "seed_table", "validation")
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
    """Representations x metrics (with settings overriding the study's defaults).

    Seeds follow the study's convention by default: every model is evaluated with the same
    seeds (one per representation and metric), so all models are scored on the same sampled
    data; ``seed_per_model`` also mixes in each model's seed. ``seed_table`` names the
    reference study whose seeds are used (``disentangled.evaluate.SEED_TABLES``):
    ``fairness_study_v1`` draws them as that study does, shifted by its tenth metric.
    """

    representations: tuple[str, ...] = ("mean", "sampled")
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed_per_model: bool = False
    seed_table: str = DEFAULT_SEED_TABLE
    validation: "ValidationSpec | None" = None


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
            return from_dict(merge(self.base, nest(setting)))
        except ConfigError as err:
            raise SpecError(f"study {self.name!r}, model_num {model_num} ({setting}): {err}") from err

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
        evaluation = {"representations": list(ev.representations), "metrics": {k: dict(v) for k, v in ev.metrics.items()},
                      "seed_per_model": ev.seed_per_model}
        if ev.seed_table != DEFAULT_SEED_TABLE:  # written only when set, so older specs keep their digest
            evaluation["seed_table"] = ev.seed_table
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
    seed_table = ev.get("seed_table", DEFAULT_SEED_TABLE)
    from ..evaluate import SEED_TABLES

    if seed_table not in SEED_TABLES:
        raise SpecError(f"{source}: evaluation.seed_table must be one of {list(SEED_TABLES)}, got {seed_table!r}."
                        + close_matches(str(seed_table), list(SEED_TABLES)))
    spec = StudySpec(
        name=str(raw["name"]), description=str(raw.get("description", "")), base=dict(base), sweep=raw["sweep"],
        evaluation=EvaluationSpec(reps, {k: dict(v or {}) for k, v in metrics.items()}, bool(ev.get("seed_per_model", False)),
                                  str(seed_table), _validation(ev.get("validation"), source)),
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
