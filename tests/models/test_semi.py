"""Semi-supervision: annealers, supervised losses, labellers, MINE, the S2 objectives and models.

Numbers marked "dlib" are the expected ranges of the reference's tests
(``methods/semi_supervised/{semi_supervised_vae,semi_supervised_utils}_test.py``,
followups.md §1.2); the others are computed by hand in the comments.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from disentangled.data.labelled import (LABELLERS, BinLabeller, NoisyLabeller, PartialLabeller, PerfectLabeller,
                                        PermutedLabeller, label_columns, largest_label_size, sample_labelled, split_point)
from disentangled.errors import ParameterError
from disentangled.models import SEMI_OBJECTIVES, get_objective, objective_options, stacked
from disentangled.models.mine import MineEstimators, dv_bound, pair_indices
from disentangled.models.objectives.s2 import MINE_OPTIMIZER
from disentangled.models.semi import SemiSupervisedVAE, build_semi_model
from disentangled.models.supervised_losses import (Embed, L2, LossParameters, anneal, cov_loss, embed_loss, l2_loss,
                                                   supervised_loss, xent_loss)
from disentangled.train.optim import make_optimizer


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- annealers (dlib: gamma 100, threshold 100) -------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("fixed", [100.0, 100.0, 100.0, 100.0]),
    ("anneal", [0.0, 10.0, 100.0, 100.0]),
    ("fine_tune", [0.0, 0.0, 0.0, 100.0]),  # 0 up to t = T, gamma from t = T + 1
])
def test_annealers_at_the_threshold(name, expected):
    got = [anneal(name, 100.0, t, 100) for t in (0, 10, 100, 101)]
    assert got == expected
    for value, want in zip(got, expected):  # dlib's ranges: [want, want + 0.01]
        assert want <= value <= want + 0.01
    assert anneal(name, 100.0, torch.tensor(101), 100) == expected[-1]


# --- supervised losses -------------------------------------------------------------------------


def _ones(k):
    return torch.ones(k)


@pytest.mark.parametrize("codes, labels, low, high", [
    (torch.zeros(64, 10), torch.zeros(64, 5), 221.806, 221.808),  # dlib: 320 * ln 2
    (torch.zeros(64, 10), torch.zeros(64, 10), 221.806 * 2, 221.808 * 2),
    (torch.ones(64, 10), torch.zeros(64, 10), 840.47, 840.49),  # dlib: 640 * (1 + ln(1 + e^-1))
])
def test_xent_reference_values(codes, labels, low, high):
    value = xent_loss(codes, labels, _ones(labels.shape[1])).item()
    assert low <= value <= high
    cells = labels.numel()
    exact = cells * (math.log(2) if codes[0, 0] == 0 else 1 + math.log(1 + math.exp(-1)))
    assert value == pytest.approx(exact, rel=1e-6)


def test_xent_divides_the_labels_by_the_number_of_values():
    # one cell, code 0, label 2 of a factor of 4 values: target 2 / 4 = 0.5 (not 2 / 3); CE(0, t) = ln 2 for any t
    assert xent_loss(torch.zeros(1, 1), torch.tensor([[2.0]]), torch.tensor([4.0])).item() == pytest.approx(math.log(2))
    # code 1, target 0.5: softplus(1) - 0.5 = 0.8132616875
    value = xent_loss(torch.ones(1, 1), torch.tensor([[2.0]]), torch.tensor([4.0])).item()
    assert value == pytest.approx(math.log1p(math.e) - 0.5, rel=1e-6)
    with pytest.raises(ParameterError, match=r"model.num_latent must be >= 3 \(the xent loss binds latent k .*\), got 2"):
        xent_loss(torch.zeros(2, 2), torch.zeros(2, 3), _ones(3))


@pytest.mark.parametrize("codes, labels, low, high", [
    (torch.zeros(64, 10), torch.zeros(64, 5), 0.0, 0.1),  # dlib
    (torch.zeros(64, 10), torch.zeros(64, 10), 0.0, 0.1),
    (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 0.125, 0.126),
])
def test_cov_reference_values(codes, labels, low, high):
    value = cov_loss(codes, labels).item()
    assert low <= value <= high


def test_cov_of_the_two_examples_by_hand():
    # centred codes [[.5, -.5], [-.5, .5]], labels [[-.5, .5], [.5, -.5]]: Cov = [[-.25, .25], [.25, -.25]];
    # off the diagonal 2 * 0.25^2 = 0.125 exactly
    assert cov_loss(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])).item() == 0.125


def test_cov_of_independent_samples_against_themselves():
    # dlib: 100,000 x 10 standard normal samples against themselves lie in [0, 0.01]
    samples = torch.from_numpy(np.random.default_rng(0).normal(size=(100_000, 10)).astype(np.float32))
    assert 0.0 <= cov_loss(samples, samples).item() <= 0.01


def test_cov_leaves_out_only_the_first_min_d_k_diagonal_entries():
    # 3 latents, 2 label columns: Cov entries (0,0) and (1,1) are left out, (2,0), (2,1), (0,1), (1,0) count
    codes = torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]])
    labels = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    # Cov[d, k] = mean_b codes_bd * labels_bk = codes[0, d]: rows [1, 1], [2, 2], [3, 3]
    assert cov_loss(codes, labels).item() == 1 + 4 + 9 + 9


def test_l2_with_the_learned_scale_by_hand():
    mean = torch.tensor([[1.0, 2.0, 9.0], [3.0, 4.0, 9.0]])  # the third latent is not bound
    labels = torch.ones(2, 2)
    # (2*1-1)^2 + (2*2-1)^2 + (2*3-1)^2 + (2*4-1)^2 = 1 + 9 + 25 + 49 (a sum over batch and factors)
    assert l2_loss(mean, labels, _ones(2), scale=torch.tensor(2.0)).item() == 84.0


def test_l2_without_the_learned_scale_is_the_intended_loss():
    # the reference's branch broadcasts the batch against itself; here sum (sigmoid(mu) - y / n)^2
    mean, labels, sizes = torch.tensor([[0.0, 0.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([4.0, 2.0])
    # sigmoid(0) = 0.5; targets 0.25, 0, 0.75, 1: 0.0625 + 0.25 + 0.0625 + 0.25
    assert l2_loss(mean, labels, sizes).item() == 0.625


def test_embed_by_hand_and_its_batch_mean():
    # one column of 2 values embedded at 0 and 1, sigma 1: a code 0 labelled 0 has logits [0, -1],
    # CE = ln(1 + e^-1); a code 1 labelled 0 has logits [-1, 0], CE = ln(1 + e^1). Averaged over the batch.
    mean = torch.tensor([[0.0], [1.0]])
    value = embed_loss(mean, torch.zeros(2, 1), torch.tensor([2.0]), embedding=torch.tensor([[0.0, 1.0]]), sigma=1.0)
    assert value.item() == pytest.approx(0.5 * (math.log1p(math.exp(-1)) + math.log1p(math.e)), rel=1e-6)
    # sigma 2 scales the distances: logits [0, -4] -> ln(1 + e^-4) for the first example alone
    one = embed_loss(mean[:1], torch.zeros(1, 1), torch.tensor([2.0]), embedding=torch.tensor([[0.0, 1.0]]), sigma=2.0)
    # (float32: the log-sum-exp is computed near 1, so its error is absolute, a few 1e-8)
    assert one.item() == pytest.approx(math.log1p(math.exp(-4)), abs=1e-7)


def test_embed_columns_of_different_sizes_ignore_the_padding():
    # column 0 has 2 values, column 1 has 3; the padded third entry of column 0 must not count
    mean = torch.tensor([[0.3, -0.2]])
    labels = torch.tensor([[1.0, 2.0]])
    embedding = torch.tensor([[0.0, 1.0, 0.25], [0.5, -0.5, 0.0]])
    got = embed_loss(mean, labels, torch.tensor([2.0, 3.0]), embedding=embedding, sigma=1.0).item()

    def ce(code, values, label):
        logits = [-(code - v) ** 2 for v in values]
        return math.log(sum(math.exp(x) for x in logits)) - logits[label]

    assert got == pytest.approx(ce(0.3, [0.0, 1.0], 1) + ce(-0.2, [0.5, -0.5, 0.0], 2), rel=1e-6)


def test_loss_parameters_and_their_initialisation():
    torch.manual_seed(0)
    assert LossParameters(L2(), 3, 5, num_latent=10).scale.item() == 1.0  # the reference's initial value
    params = LossParameters(Embed(sigma="learn"), 2, 40, num_latent=10, sizes=[3, 40])
    assert params.embedding.shape == (2, 40) and params.sigma.shape == (2,)
    assert params.embedding[0, 3:].abs().sum() == 0  # beyond column 0's three values: never used
    assert params.embedding[0, :3].abs().max() <= math.sqrt(3 / 3) and params.embedding[1].abs().max() <= math.sqrt(3 / 40)
    assert params.sigma.abs().max() <= math.sqrt(3)
    ordered = LossParameters(Embed(use_order=True), 2, 6, num_latent=10)
    assert sorted(n for n, _ in ordered.named_parameters()) == ["bias", "slope"]
    # use_order: value v of a column is embedded at slope * v + bias
    with torch.no_grad():
        ordered.slope.copy_(torch.tensor([1.0, 2.0]))
        ordered.bias.copy_(torch.tensor([0.0, -1.0]))
    mean, labels, sizes = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([2.0, 2.0])
    via = supervised_loss(Embed(use_order=True), mean, labels, sizes, parameters=ordered, width=6, sigma=1.0)
    direct = embed_loss(mean, labels, sizes, embedding=torch.tensor([[0.0, 1, 2, 3, 4, 5], [-1.0, 1, 3, 5, 7, 9]]), sigma=1.0)
    assert torch.equal(via, direct)


# --- MINE ---------------------------------------------------------------------------------------


def test_dv_bound_of_a_constant_statistic_is_zero():
    t = torch.full((7,), 3.5)
    assert dv_bound(t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_pairs_are_ordered_factor_major():
    factor, latent = pair_indices(2, 3)
    assert factor.tolist() == [0, 0, 0, 1, 1, 1] and latent.tolist() == [0, 1, 2, 0, 1, 2]


@pytest.mark.slow
def test_mine_estimates_the_mutual_information_of_a_noisy_sign():
    """dlib's test_mine: x = sign(N(0, 1)), y = x + N(0, 0.2) (variance); I(x; y) = 0.6587 nats (numerical
    integration; the reference says "about 0.6589"); after 200 Adam steps (lr 0.01) on batches of 10,000
    the estimate lies in [0.6, 0.7]."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    estimator = MineEstimators(1, 1)
    opt = make_optimizer("tf1_adam", estimator.parameters(), MINE_OPTIMIZER)
    g = _gen(1)
    for _ in range(200):
        x = np.sign(rng.normal(size=(10_000, 1)))
        y = x + rng.normal(0.0, math.sqrt(0.2), size=x.shape)
        codes, labels = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        order = torch.rand(1, 10_000, generator=g).argsort(-1)
        mi = estimator(codes, labels, order)[0]
        opt.zero_grad()
        (-mi).backward()
        opt.step()
    assert 0.6 <= mi.item() <= 0.7


# --- labellers (dlib's semi_supervised_utils_test) ---------------------------------------------


def _grid():
    return np.array([[0, 0], [1, 1], [2, 2], [3, 3], [4, 4]]), (5, 5)


def test_perfect_labeller_is_the_identity():
    factors, sizes = _grid()
    labels = PerfectLabeller()(factors, sizes, rng=np.random.RandomState(0))
    assert labels.values.dtype == np.float32 and np.array_equal(labels.values, factors)
    assert labels.sizes == (5, 5) and labels.columns == (0, 1)


@pytest.mark.parametrize("num_bins, expected", [(10, [0, 1, 2, 3, 4]), (5, [0, 1, 2, 3, 4]), (3, [0, 0, 1, 1, 2]),
                                                (2, [0, 0, 0, 1, 1])])
def test_bin_labeller(num_bins, expected):
    factors, sizes = _grid()
    labels = BinLabeller(num_bins)(factors, sizes, rng=np.random.RandomState(0))
    assert labels.values[:, 0].tolist() == expected and labels.values[:, 1].tolist() == expected
    assert labels.sizes == (min(5, num_bins),) * 2


def test_bin_labeller_on_the_dsprites_sizes():
    sizes = (1, 3, 6, 40, 32, 32)
    factors = np.array([[0, 2, 5, 39, 31, 31], [0, 0, 0, 8, 6, 7]])
    labels = BinLabeller(5)(factors, sizes, rng=np.random.RandomState(0))
    # bins of 6/5, 40/5 = 8 and 32/5 = 6.4 values: 5 // 1.2 = 4, 39 // 8 = 4, 31 // 6.4 = 4; 8 // 8 = 1, 6 // 6.4 = 0, 7 // 6.4 = 1
    assert labels.values.tolist() == [[0, 2, 4, 4, 4, 4], [0, 0, 0, 1, 0, 1]]
    assert labels.sizes == (1, 3, 5, 5, 5, 5)


def test_noisy_labeller_statistics_and_draw_order():
    rng = np.random.RandomState(0)
    factors = rng.randint(5, size=(10_000, 10))
    labels = NoisyLabeller(0.1)(factors, (5,) * 10, rng=np.random.RandomState(1))
    changed = int((labels.values != factors).sum())
    assert 7000 <= changed <= 12000  # dlib's range; expected 100,000 * 0.1 * (1 - 1/5) = 8000
    # the reference's order: examples, then factors; one rand() per cell, randint(n) only when it fires
    replay, expected = np.random.RandomState(1), factors.copy()
    for j in range(200):
        for i in range(10):
            if replay.rand() < 0.1:
                expected[j, i] = replay.randint(5)
    assert np.array_equal(labels.values[:200], expected[:200])
    assert np.array_equal(factors, np.random.RandomState(0).randint(5, size=(10_000, 10)))  # the input is not changed


def test_permuted_binary_factor_is_identity_or_negation():
    factors = np.random.RandomState(0).randint(2, size=(100, 1))
    seen = set()
    for seed in range(8):
        labels = PermutedLabeller()(factors, (2,), rng=np.random.RandomState(seed)).values[:, 0]
        assert np.array_equal(labels, factors[:, 0]) or np.array_equal(labels, 1 - factors[:, 0])
        seen.add(bool(np.array_equal(labels, factors[:, 0])))
    assert seen == {True, False}  # both permutations occur


def test_permuted_labeller_keeps_each_value_class():
    factors = np.random.RandomState(0).randint(6, size=(500, 2))
    labels = PermutedLabeller()(factors, (6, 6), rng=np.random.RandomState(3)).values
    for i in range(2):  # one bijection per factor: equal labels exactly where the factors are equal
        mapping = {int(f): int(v) for f, v in zip(factors[:, i], labels[:, i])}
        assert sorted(mapping.values()) == list(range(6))
        assert all(mapping[int(f)] == v for f, v in zip(factors[:, i], labels[:, i]))


def test_partial_labeller_keeps_random_columns_in_drawn_order():
    factors = np.arange(50).reshape(10, 5) % 7
    labels = PartialLabeller(3)(factors, (7, 8, 9, 10, 11), rng=np.random.RandomState(0))
    keep = list(np.random.RandomState(0).permutation(5)[:3])  # choice(5, 3, replace=False) of a RandomState
    assert labels.columns == tuple(keep) and labels.values.shape == (10, 3)
    assert np.array_equal(labels.values, factors[:, keep]) and labels.sizes == tuple(7 + k for k in keep)
    with pytest.raises(ParameterError, match=r"num_observed_factors must be <= 5"):
        PartialLabeller(6)(factors, (7, 8, 9, 10, 11), rng=np.random.RandomState(0))


def test_labeller_settings_are_checked():
    with pytest.raises(ParameterError, match="bin labeller: num_bins must be >= 1, got 0"):
        BinLabeller(0)
    with pytest.raises(ParameterError, match=r"prob_random must be in \[0.0, 1.0\], got 1.5"):
        NoisyLabeller(1.5)
    with pytest.raises(ParameterError, match="has no setting 'num_bins'"):
        LABELLERS.build("noisy", num_bins=3)
    assert label_columns(PartialLabeller(2), 6) == 2 and label_columns(BinLabeller(3), 6) == 6
    assert largest_label_size(BinLabeller(3), (1, 3, 40)) == 3 and largest_label_size(PerfectLabeller(), (1, 3, 40)) == 40


def test_labelled_set_draws_factors_observations_then_labels():
    from disentangled.data import get

    data = get("dummy_data")
    drawn = sample_labelled(data, 10, NoisyLabeller(0.5), rng=np.random.RandomState(7), train_percentage=0.25)
    replay = np.random.RandomState(7)
    factors = data.sample_factors(10, rng=replay)
    observations = data.observations_from_factors(factors, rng=replay)
    labels = NoisyLabeller(0.5)(factors, data.factor_sizes, rng=replay)
    assert np.array_equal(drawn.factors, factors) and np.array_equal(drawn.observations, observations)
    assert np.array_equal(drawn.labels.values, labels.values)
    assert drawn.num_train == 3 == split_point(10, 0.25)  # ceil(2.5)
    assert drawn.train[0].shape[0] == 3 and drawn.validation[1].shape[0] == 7
    assert split_point(100, 0.9) == 90 and split_point(100, 1.0) == 100


# --- objectives ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SEMI_OBJECTIVES))
def test_registry_entry(name):
    cls = SEMI_OBJECTIVES[name]
    objective = cls()
    assert cls.name == name and cls.batch_kind == "labelled" and cls.__doc__
    assert "eq." in __import__(cls.__module__, fromlist=["_"]).__doc__
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(objective, dataclasses.fields(objective)[0].name, 0.5)
    assert get_objective(name, **objective.hyperparameters()) == objective
    assert list(objective.hyperparameters()) == objective_options(name)


def test_defaults_and_resolved_loss_settings():
    s2 = get_objective("s2_vae")
    assert (s2.beta, s2.gamma_sup, s2.supervised_loss, s2.annealer) == (1.0, 1.0, "xent", "fixed")
    assert (s2.learn_scale, s2.sigma, s2.use_order) == (None, None, None)  # not settings of xent
    l2 = get_objective("s2_vae", supervised_loss="l2")
    assert l2.learn_scale is True and l2.sigma is None  # the reference's default, written out
    embed = get_objective("s2_factor_vae", supervised_loss="embed", sigma="learn")
    assert (embed.sigma, embed.use_order, embed.train_loss_parameters) == ("learn", False, False)
    assert get_objective("s2_mine_vae").mine_optimizer.lr == 0.01
    assert get_objective("s2_dip_vae_i").lambda_d_factor == 10.0 and get_objective("s2_dip_vae_ii").lambda_d_factor == 1.0


@pytest.mark.parametrize("options, match", [
    ({"supervised_loss": "xent", "sigma": 2.0}, r"s2_vae: sigma must be unset for the 'xent' loss .*embed.*, got 2.0"),
    ({"supervised_loss": "l2", "use_order": True}, r"use_order must be unset for the 'l2' loss"),
    ({"supervised_loss": "hinge"}, r"s2_vae: supervised_loss must be one of \['l2', 'xent', 'cov', 'embed'\], got 'hinge'"),
    ({"supervised_loss": "embed", "sigma": 0.0}, r"s2_vae: embed: sigma must be > 0.0"),
    ({"supervised_loss": "embed", "sigma": "lern"}, r"sigma must be a number > 0 or 'learn', got 'lern'"),
    ({"annealer": "cosine"}, r"s2_vae: annealer must be one of \['fixed', 'anneal', 'fine_tune'\], got 'cosine'"),
    ({"annealer": "anneal", "iteration_threshold": 0}, r"iteration_threshold must be >= 1, got 0"),
    ({"gamma_sup": -1.0}, r"s2_vae: gamma_sup must be >= 0, got -1.0"),
])
def test_bad_objective_settings_name_the_key_the_rule_and_the_value(options, match):
    with pytest.raises(ParameterError, match=match):
        get_objective("s2_vae", **options)


def test_coefficients_follow_the_annealer_and_the_unsupervised_objective():
    o = get_objective("s2_factor_vae", gamma=20.0, gamma_sup=6.0, annealer="anneal", iteration_threshold=4)
    assert o.coefficients(1) == {"gamma": 20.0, "gamma_sup": 1.5}
    assert get_objective("s2_beta_tc_vae", beta=3.0).coefficients(0) == {"tc_weight": 2.0, "gamma_sup": 1.0}
    assert get_objective("s2_vae", supervised_loss="embed", sigma=2.5).coefficients(0) == {"beta": 1.0, "gamma_sup": 1.0,
                                                                                            "sigma": 2.5}
    assert get_objective("supervised").coefficients(10**6) == {"gamma_sup": 1.0}


def test_penalty_adds_the_weighted_supervised_term():
    kl, sup = torch.tensor(2.0), torch.tensor(5.0)
    mean = logvar = z = torch.zeros(4, 3)
    o = get_objective("s2_vae", beta=4.0, gamma_sup=3.0)
    assert o.regularizer(kl, mean, logvar, z, 0, supervised=sup).item() == 4 * 2 + 3 * 5
    assert get_objective("supervised").regularizer(kl, mean, logvar, z, 0, supervised=sup).item() == 5.0  # no KL


# --- models: forward/backward, one model and a stack -------------------------------------------

SETUPS = [
    ("s2_vae", {"supervised_loss": "xent"}),
    ("s2_vae", {"supervised_loss": "l2"}),
    ("s2_vae", {"supervised_loss": "l2", "learn_scale": False}),
    ("s2_vae", {"supervised_loss": "cov"}),
    ("s2_vae", {"supervised_loss": "embed", "sigma": "learn"}),
    ("s2_vae", {"supervised_loss": "embed", "use_order": True}),
    ("supervised", {"supervised_loss": "embed"}),
    ("s2_factor_vae", {"supervised_loss": "l2", "train_loss_parameters": True}),
    ("s2_factor_vae", {"supervised_loss": "embed"}),
    ("s2_dip_vae_i", {}),
    ("s2_dip_vae_ii", {}),
    ("s2_beta_tc_vae", {"annealer": "anneal", "iteration_threshold": 4}),
    ("s2_mine_vae", {}),
]


def _model(name, options, seed=0, num_columns=3, width=4):
    torch.manual_seed(seed)
    objective = get_objective(name, **options)
    return build_semi_model(objective, observation_shape=(1, 64, 64), architecture="fc", num_latent=4,
                            num_columns=num_columns, label_width=width, column_sizes=[2, 3, 4])


def _batch(lead=(), seed=0):
    g = _gen(seed)
    return {
        "unlabelled": torch.rand(*lead, 5, 1, 64, 64, generator=g),
        "labelled": torch.rand(*lead, 5, 1, 64, 64, generator=g),
        "labels": torch.stack([torch.randint(0, n, (*lead, 5), generator=g) for n in (2, 3, 4)], -1).float(),
        "sizes": torch.tensor([2.0, 3.0, 4.0]).expand(*lead, 3).clone(),
    }


@pytest.mark.parametrize("name, options", SETUPS, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in SETUPS])
def test_forward_backward_one_model(name, options):
    model = _model(name, options)
    assert isinstance(model, SemiSupervisedVAE)
    terms = model.loss_terms(_batch(), step=3, generator=_gen(2))
    keys = {"loss", "reconstruction", "kl", "regularizer", "elbo", "supervised_loss"}
    keys |= {"discriminator_loss"} if name == "s2_factor_vae" else set()
    keys |= {"mine_loss"} if name == "s2_mine_vae" else set()
    assert set(terms) == keys
    assert all(v.shape == () and torch.isfinite(v) for v in terms.values())
    total = terms["loss"] + terms.get("discriminator_loss", 0) + terms.get("mine_loss", 0)
    total.backward()
    # supervised: no KL and a detached sample, so nothing trains the log-variance head (as in the reference)
    untrained = {id(p) for p in model.encoder.logvar.parameters()} if name == "supervised" else set()
    for p in model.vae_parameters():
        if id(p) in untrained:
            assert p.grad is None
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    if name == "supervised":
        assert terms["regularizer"].item() == terms["supervised_loss"].item()
    if model.estimators is not None:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.estimators.parameters())
    frozen = name == "s2_factor_vae" and not options.get("train_loss_parameters")
    if model.loss_parameters is not None:
        assert all(p.requires_grad != frozen for p in model.loss_parameters.parameters())


def test_supervised_encoder_learns_from_the_labels_alone():
    model = _model("supervised", {"supervised_loss": "xent"})
    batch = _batch()
    terms = model.loss_terms(batch, step=0, generator=_gen(1))
    grads = torch.autograd.grad(terms["reconstruction"], list(model.encoder.parameters()), allow_unused=True)
    assert all(g is None for g in grads)  # no gradient of the reconstruction reaches the encoder


def test_gradients_go_each_to_their_own_networks():
    model = _model("s2_mine_vae", {"gamma_sup": 5.0})
    terms = model.loss_terms(_batch(), step=0, generator=_gen(1))
    mine = list(model.estimators.parameters())
    assert all(g is None for g in torch.autograd.grad(terms["loss"], mine, retain_graph=True, allow_unused=True))
    vae = model.vae_parameters()
    assert all(g is None for g in torch.autograd.grad(terms["mine_loss"], vae, retain_graph=True, allow_unused=True))
    # the supervised term reaches the encoder: with gamma_sup = 0 the encoder's gradient changes
    plain = _model("s2_mine_vae", {"gamma_sup": 0.0})
    g0 = torch.autograd.grad(plain.loss_terms(_batch(), step=0, generator=_gen(1))["loss"], plain.encoder.dense1.weight)[0]
    g5 = torch.autograd.grad(terms["loss"], model.encoder.dense1.weight)[0]
    assert not torch.equal(g0, g5)
    assert model.extra_optimizers()["mine"][1] == MINE_OPTIMIZER and model.extra_optimizers()["mine"][2] == "mine_loss"


def test_mine_pays_only_for_pairs_off_the_diagonal():
    model = _model("s2_mine_vae", {})
    # 3 factors x 4 latents: 12 pairs; l == r for (0,0), (1,1), (2,2)
    assert model.off_diagonal.tolist() == [1, 2, 3, 4, 6, 7, 8, 9, 11]


# beta-TCVAE's stack is not bit for bit at this batch size, inherited from the unsupervised model: with
# beta_tc_vae alone (models.stacked.stack_models, fc, CPU) the gradients of a stack of two differ from
# each model's at batch 5 (4 latents) and at the study's batch 64 (10 latents), while they agree at the
# batch 4 of tests/train/test_ensemble.py. The estimate's backward pass is equal in isolation; the
# encoder mean's three gradient contributions (sample, KL, TC) are summed in another order. Strict:
# this fails once that is fixed, to take the mark off.
_TC_STACK = pytest.mark.xfail(strict=True, reason="inherited from beta_tc_vae's stack: gradients summed in another order")
STACKED_SETUPS = [pytest.param(n, o, marks=_TC_STACK) if n == "s2_beta_tc_vae" else (n, o) for n, o in SETUPS]


@pytest.mark.parametrize("name, options", STACKED_SETUPS, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in SETUPS])
def test_stacked_step_is_bit_for_bit(name, options):
    """Loss terms and gradients of a stack of two models equal those of each model alone (CPU)."""
    models = [_model(name, {**options, **({"gamma_sup": 2.0 + m} if name != "supervised" else {})}, seed=m) for m in range(2)]
    model = stacked.stack_models(models)
    batch = _batch(lead=(2,))
    terms = model.loss_terms(batch, step=5, generator=[_gen(10 + m) for m in range(2)])
    (terms["loss"].sum() + terms.get("discriminator_loss", torch.zeros(2)).sum() + terms.get("mine_loss", torch.zeros(2)).sum()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for m, alone in enumerate(models):
        own = alone.loss_terms({k: v[m] for k, v in batch.items()}, step=5, generator=_gen(10 + m))
        (own["loss"] + own.get("discriminator_loss", 0) + own.get("mine_loss", 0)).backward()
        for k in own:
            assert torch.equal(own[k], terms[k][m]), (m, k)
        for n, p in alone.named_parameters():
            if p.grad is None:
                assert grads[n] is None, n
            else:
                assert torch.equal(p.grad, grads[n][m]), (m, n)


def test_stacked_members_may_differ_in_sigma_and_the_threshold():
    models = [_model("s2_vae", {"supervised_loss": "embed", "sigma": s, "annealer": "anneal", "iteration_threshold": t}, seed=i)
              for i, (s, t) in enumerate([(1.0, 2), (3.0, 8)])]
    model = stacked.stack_models(models)
    batch = _batch(lead=(2,))
    terms = model.loss_terms(batch, step=1, generator=[_gen(0), _gen(1)])
    for m, alone in enumerate(models):
        own = alone.loss_terms({k: v[m] for k, v in batch.items()}, step=1, generator=_gen(m))
        assert torch.equal(own["loss"], terms["loss"][m]) and torch.equal(own["supervised_loss"], terms["supervised_loss"][m])


def test_gamma_sup_zero_leaves_the_unsupervised_gradients_unchanged():
    """With gamma_sup = 0, s2_vae's gradients of the encoder and decoder are beta-VAE's on the unlabelled batch."""
    from disentangled.models import BetaVAE, build_model

    s2 = _model("s2_vae", {"beta": 3.0, "gamma_sup": 0.0, "supervised_loss": "l2"})
    torch.manual_seed(0)
    plain = build_model(BetaVAE(beta=3.0), observation_shape=(1, 64, 64), architecture="fc", num_latent=4)
    batch = _batch()
    a = s2.loss_terms(batch, step=0, generator=_gen(3))
    b = plain.loss_terms(batch["unlabelled"], step=0, generator=_gen(3))
    a["loss"].backward()
    b["loss"].backward()
    assert torch.equal(a["loss"], b["loss"])
    for (n, p), q in zip(plain.named_parameters(), [*s2.encoder.parameters(), *s2.decoder.parameters()]):
        assert torch.equal(p.grad, q.grad), n


def test_build_refuses_too_few_latents_for_the_binding_losses():
    with pytest.raises(ParameterError, match=r"model.num_latent must be >= 3 \(the xent loss binds latent k.*\), got 2"):
        build_semi_model(get_objective("s2_vae"), observation_shape=(1, 64, 64), architecture="fc", num_latent=2,
                         num_columns=3, label_width=4)
    build_semi_model(get_objective("s2_vae", supervised_loss="cov"), observation_shape=(1, 64, 64), architecture="fc",
                     num_latent=2, num_columns=3, label_width=4)  # cov decorrelates all latents from all labels
    with pytest.raises(TypeError, match="semi-supervised objective"):
        build_semi_model(get_objective("beta_vae"), observation_shape=(1, 64, 64), num_columns=3, label_width=4)


@pytest.mark.parametrize("name, options", [("s2_mine_vae", {}), ("s2_vae", {"supervised_loss": "embed", "sigma": "learn"}),
                                           ("s2_vae", {"supervised_loss": "cov"}), ("s2_factor_vae", {"supervised_loss": "l2"})])
def test_gpu_kernels_agree_within_tolerance(monkeypatch, name, options):
    """The vectorised path a GPU runs (the stacked MINE networks and losses over the model axis), here on
    the CPU: equal to the model-by-model path to float32 rounding."""
    models = [_model(name, {**options, "gamma_sup": 2.0 + m}, seed=m) for m in range(2)]
    batch = _batch(lead=(2,))
    results = []
    for batched in (False, True):
        monkeypatch.setattr(stacked, "BATCHED_ON_CPU", batched)
        model = stacked.stack_models(models)
        terms = model.loss_terms(batch, step=5, generator=[_gen(10 + m) for m in range(2)])
        (terms["loss"].sum() + terms.get("discriminator_loss", torch.zeros(2)).sum()
         + terms.get("mine_loss", torch.zeros(2)).sum()).backward()
        results.append((terms, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (t0, g0), (t1, g1) = results
    for k in t0:
        torch.testing.assert_close(t0[k], t1[k], rtol=1e-5, atol=1e-4)
    assert g0.keys() == g1.keys()
    for n in g0:
        # 1e-6 absolute: the DV bound is unchanged by a constant shift of T, so the MINE networks' output
        # bias has a gradient of exactly 0 but for float32 rounding (about 1e-7 here)
        assert (g0[n] - g1[n]).abs().max() <= 1e-4 * g0[n].abs().max() + 1e-6, n
