"""Every registry against the same properties, and the one shape of parameter errors.

In the manner of scikit-learn's ``metrics/cluster/tests/test_common.py``: the registries are
listed once below and every property is checked on each of them, so a new registry (or a new
entry) is tested by being listed (registered).
"""

import collections.abc

import numpy as np
import pytest

from disentangled import data, metrics, models
from disentangled.config import ConfigError
from disentangled.data import DATASETS
from disentangled.data.download import DownloadError
from disentangled.data.paths import DataFileError
from disentangled.errors import (
    DisentangledError,
    MissingFileError,
    ParameterError,
    UnknownNameError,
    check,
    check_choice,
    check_float,
    check_int,
    close_matches,
)
from disentangled.metrics import METRICS
from disentangled.models import ARCHITECTURES, OBJECTIVES
from disentangled.registry import Registry
from disentangled.rundir import StudyDirError
from disentangled.study import spec
from disentangled.study.execute import RayUnavailable
from disentangled.study.spec import PRESETS
from disentangled.study.sweep import SpecError

# each registry with the positional arguments every build of its entries needs
REGISTRIES = {
    "data set": (DATASETS, ()),
    "objective": (OBJECTIVES, ()),
    "architecture": (ARCHITECTURES, ((1, 64, 64),)),
    "metric": (METRICS, ()),
    "study preset": (PRESETS, ()),
}
ENTRIES = [(kind, name) for kind, (registry, _) in REGISTRIES.items() for name in registry]


def _typo(registry, name: str) -> str:
    """A name close to ``name`` that is not registered."""
    typo = name + "x"
    assert typo not in registry
    return typo


@pytest.mark.parametrize("kind", REGISTRIES)
def test_a_registry_is_a_read_only_mapping_of_its_kind(kind):
    registry, _ = REGISTRIES[kind]
    assert isinstance(registry, collections.abc.Mapping)
    assert not isinstance(registry, collections.abc.MutableMapping)
    assert registry.kind == kind and len(registry) == len(list(registry)) > 0
    assert all(isinstance(name, str) for name in registry)
    first = next(iter(registry))
    assert first in registry and registry.get(first) is registry[first]
    assert "no such name" not in registry and registry.get("no such name") is None
    assert ["unhashable"] not in registry
    with pytest.raises(TypeError):
        registry[first] = None  # type: ignore[index]


def test_iteration_follows_the_literal_order():
    written = {"zeta": 1, "alpha": 2, "mu": 3}
    registry = Registry("letter", written)
    assert list(registry) == ["zeta", "alpha", "mu"] and list(registry.values()) == [1, 2, 3]
    # the package's own lists, as written in their modules (not sorted)
    assert list(METRICS)[:3] == ["beta_vae", "factor_vae", "mig"]
    assert list(DATASETS)[:2] == ["dummy_data", "dsprites_full"]
    assert list(OBJECTIVES)[:3] == ["beta_vae", "annealed_vae", "factor_vae"]
    assert list(PRESETS) == sorted(PRESETS)  # the preset files, by name


@pytest.mark.parametrize("kind", REGISTRIES)
def test_unknown_name_names_the_kind_the_known_names_and_close_matches(kind):
    registry, _ = REGISTRIES[kind]
    name = next(iter(registry))
    typo = _typo(registry, name)
    with pytest.raises(UnknownNameError) as info:
        registry[typo]
    message = str(info.value)
    assert message.startswith(f"unknown {kind} {typo!r}; known {kind}s: {', '.join(registry)}.")
    assert f"Did you mean {name!r}" in message or f", {name!r}" in message
    with pytest.raises(UnknownNameError) as info:
        registry["qqqqqqqqqqqq"]
    assert str(info.value) == f"unknown {kind} 'qqqqqqqqqqqq'; known {kind}s: {', '.join(registry)}."
    # one error class, which `except ValueError` and `except KeyError` both catch
    assert isinstance(info.value, ParameterError) and isinstance(info.value, KeyError)
    with pytest.raises(UnknownNameError):
        registry.build(typo)


@pytest.mark.parametrize("kind, name", ENTRIES)
def test_unknown_option_is_refused_naming_the_allowed_ones(kind, name):
    registry, args = REGISTRIES[kind]
    allowed = registry.options(name)
    with pytest.raises(UnknownNameError) as info:
        registry.build(name, *args, qqqqqqqqqqqq=1)
    word = registry.option
    assert str(info.value) == f"{kind} {name!r} has no {word} 'qqqqqqqqqqqq'; its {word}s are {allowed or 'none'}."
    if allowed:
        with pytest.raises(UnknownNameError, match=f"Did you mean {allowed[0]!r}"):
            registry.build(name, *args, **{_typo(allowed, allowed[0]): 1})


@pytest.mark.parametrize("kind, name", ENTRIES)
def test_every_entry_builds_with_its_defaults(kind, name):
    registry, args = REGISTRIES[kind]
    assert registry.build(name, *args) is not None


@pytest.mark.parametrize("lookup, kind", [
    (lambda: data.get("dsprite_full"), "data set"),
    (lambda: data.options_of("dsprite_full"), "data set"),
    (lambda: models.get_objective("beta_vea"), "objective"),
    (lambda: models.objective_options("beta_vea"), "objective"),
    (lambda: models.build_architecture("cnv", (1, 64, 64)), "architecture"),
    (lambda: models.architecture_options("cnv"), "architecture"),
    (lambda: metrics.get("mgi"), "metric"),
])
def test_the_public_lookups_give_the_registry_error(lookup, kind):
    with pytest.raises(UnknownNameError, match=f"^unknown {kind} '.*'; known {kind}s: .*Did you mean"):
        lookup()


def test_option_messages_use_each_registry_word():
    with pytest.raises(UnknownNameError, match=r"^metric 'mig' has no setting 'bins'; its settings are \[.*\]\. Did you mean 'num_bins'\?$"):
        metrics.get("mig", bins=5)
    with pytest.raises(UnknownNameError, match=r"^objective 'beta_vae' has no hyperparameter 'betta'"):
        models.get_objective("beta_vae", betta=4)
    with pytest.raises(UnknownNameError, match=r"^data set 'dummy_data' has no option 'source'; its options are none\.$"):
        data.get("dummy_data", source="procedural")


def test_an_unknown_preset_is_a_spec_error_with_the_registry_message():
    with pytest.raises(SpecError, match=r"^unknown study preset 'quikstart'; known study presets: .*Did you mean 'quickstart'\? Or give"):
        spec.load_spec("quikstart")
    assert spec.presets() == list(PRESETS)


# -- the check helpers: "<name> must be <rule>[ (<why>)], got <value!r>[; <fix>]" ------------


@pytest.mark.parametrize("call, expected", [
    (lambda: check_int("train.steps", 0, low=1), "train.steps must be >= 1, got 0"),
    (lambda: check_int("train.steps", "3", low=1), "train.steps must be an integer >= 1, got '3'"),
    (lambda: check_int("seed", True, low=0), "seed must be an integer >= 0, got True"),
    (lambda: check_int("seed", 2.0), "seed must be an integer, got 2.0"),
    (lambda: check_int("max_depth", 9, low=1, high=7), "max_depth must be in [1, 7], got 9"),
    (lambda: check_int("train.batch_size", 1, low=2, why="a variance needs two samples"),
     "train.batch_size must be >= 2 (a variance needs two samples), got 1"),
    (lambda: check_int("--draws", 0, low=1, fix="use --draws 1 for a single draw"),
     "--draws must be >= 1, got 0; use --draws 1 for a single draw"),
    (lambda: check_float("adam: beta2", 1.0, low=0, high=1, high_open=True), "adam: beta2 must be in [0, 1), got 1.0"),
    (lambda: check_float("mig: q", 0.0, low=0, high=1, low_open=True), "mig: q must be in (0, 1], got 0.0"),
    (lambda: check_float("train.lr", 0.0, low=0, low_open=True), "train.lr must be > 0, got 0.0"),
    (lambda: check_float("train.lr", float("nan"), low=0, low_open=True), "train.lr must be a finite number > 0, got nan"),
    (lambda: check_float("gamma", float("inf"), high=10), "gamma must be a finite number <= 10, got inf"),
    (lambda: check_float("beta", "4"), "beta must be a finite number, got '4'"),
    (lambda: check_choice("init", "tf", ("tf1", "torch")), "init must be one of ['tf1', 'torch'], got 'tf'. Did you mean 'tf1'?"),
    (lambda: check_choice("kernel_size_34", 3, (2, 4)), "kernel_size_34 must be one of [2, 4], got 3"),
    (lambda: check_choice("source", ["a"], ("official",)), "source must be one of ['official'], got ['a']"),
    (lambda: check("model.channels_last", "yes", lambda v: isinstance(v, bool), "true or false", fix="write true or false"),
     "model.channels_last must be true or false, got 'yes'; write true or false"),
    (lambda: check("fps", "fast", lambda v: v > 0, "> 0"), "fps must be > 0, got 'fast'"),
])
def test_check_messages_have_one_shape(call, expected):
    with pytest.raises(ParameterError) as info:
        call()
    assert str(info.value) == expected


def test_checks_pass_good_values_and_take_numpy_numbers():
    check_int("n", np.int64(3), low=1)
    check_int("n", 7, low=1, high=7)
    check_float("x", np.float32(0.5), low=0, high=1)
    check_float("x", 0, low=0)
    check_choice("k", 4, (2, 4))
    check("flag", True, lambda v: isinstance(v, bool), "true or false")


def test_checks_raise_the_class_they_are_given():
    with pytest.raises(ConfigError, match=r"^seed must be >= 0, got -1$"):
        check_int("seed", -1, low=0, error=ConfigError)


def test_close_matches():
    assert close_matches("mgi", ["mig", "dci"]) == " Did you mean 'mig'?"
    assert close_matches("zzz", ["mig", "dci"]) == ""
    from disentangled.data.base import close_matches as from_data

    assert from_data is close_matches


@pytest.mark.parametrize("error", [
    UnknownNameError("metric", "mgi", ["mig", "dci"]),
    UnknownNameError("setting", "bins", ["num_bins"], owner="metric 'mig'"),
    ParameterError("train.steps must be >= 1, got 0"),
    MissingFileError("results.parquet: no results table here"),
    ConfigError("data.source must be one of ['official', 'procedural'], got 'x'"),
])
def test_errors_survive_pickling(error):
    """Worker processes (the local and Ray executors) send errors back pickled."""
    import pickle

    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)


@pytest.mark.parametrize("cls, also", [
    (ParameterError, ValueError),
    (UnknownNameError, KeyError),
    (MissingFileError, FileNotFoundError),
    (ConfigError, ParameterError),
    (SpecError, ParameterError),
    (DataFileError, FileNotFoundError),
    (DownloadError, RuntimeError),
    (StudyDirError, ValueError),
    (RayUnavailable, RuntimeError),
])
def test_the_project_errors_share_one_base(cls, also):
    assert issubclass(cls, DisentangledError) and issubclass(cls, also)
    assert cls.exit_code == 2
