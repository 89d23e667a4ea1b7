"""Golden values computed once with the reference, disentanglement_lib.

Provenance: disentanglement-lib 1.5 (the PyPI release, installed with --no-deps into a throwaway
virtual environment outside this repository) with scikit-learn 1.9.1, numpy 2.4.6, scipy 1.17.1,
Python 3.11.7, OMP_NUM_THREADS=1. gin and absl were replaced by tiny stand-ins so that the
metric modules import without TensorFlow; the discretizer was bound to the study's
``histogram_discretizer`` with 20 bins. Inputs: ``golden_arrays()`` (float32 and float64) and,
for the sampled metrics, an identity data set with factor sizes (3, 6, 10, 8) drawn one
``randint`` column per factor, the representation ``golden_representation`` and
``numpy.random.RandomState(seed)`` with the seeds below; see ``metric_support.py``.
Array level: ``_compute_mig``, ``discrete_mutual_info``, ``discrete_entropy``, ``modularity``,
``explicitness_per_factor`` (on ``normalize_data`` codes), ``gaussian_total_correlation`` and
``gaussian_wasserstein_correlation`` of ``np.cov(codes)``, the unsupervised mutual-information
score, ``scalable_disentanglement_score`` (factors discretised), ``_compute_dci`` and
``compute_score_matrix`` (randomised solvers, numpy's global seed set to 0, 1, 2 before each).
Sampled: ``compute_mig`` (RandomState(11), 1000 points), ``unsupervised_metrics`` (12, 500),
``compute_modularity_explicitness`` (13, 500/250), ``compute_irs`` (14, 500),
``compute_beta_vae_sklearn`` (15, batch 8, 300/150), ``compute_factor_vae`` (16, batch 8,
300/150, 500 for the variances, prune threshold 0.05), ``compute_dci`` (17, 300/150, global
seed 0), ``compute_sap`` (18, 300/150, global seed 0), ``compute_downstream_task`` with
``logistic_regression_cv`` (19, sizes 10 and 100, 100 test points) and with
``gradient_boosting_classifier`` (20, same sizes, global seed 0). All batch sizes 16 unless said.
No reference code is in this repository; these are its outputs.
"""

GOLDEN = {
    'float32': {
        'discretized_first_rows': [[18, 4, 11, 5, 12, 9], [8, 10, 8, 12, 10, 8], [11, 6, 12, 10, 8, 7], [15, 11, 15, 11, 10, 4], [9, 6, 11, 11, 12, 7]],
        'discrete_mi': [[0.02549408107184672, 0.941790733125945, 0.10759086673256493, 0.08369207678339026], [0.23381352059001323, 0.1647850886481474, 0.14602566990652668, 0.17183736375561579], [0.12438719424161995, 0.05711790974430993, 0.0841023649758576, 0.4229557696025457], [0.08915500488288515, 0.5692443581473604, 0.08889265925149935, 0.07780362177745156], [0.06916179331931654, 0.040303853158758195, 0.11042489370091943, 0.08183600173483302], [0.017944431211334735, 0.05690314826606618, 0.0855773988780186, 0.05999663260054416]],
        'entropy': [1.0985451397419945, 1.7895668577423152, 2.3012402379790635, 2.0777201521309108],
        'mig': 0.11102994949551943,
        'modularity': 0.7937351309671589,
        'explicitness_train': 0.8473661838518607,
        'explicitness_test': 0.8317175131579837,
        'gaussian_total_correlation': 0.7721125338896311,
        'gaussian_wasserstein_correlation': 0.37784305134448015,
        'gaussian_wasserstein_correlation_norm': 0.13744621122302933,
        'mutual_info_score': 0.19295875828425907,
        'irs': 0.4712478401398094,
        'dci_seed0': {
            'informativeness_train': 0.952,
            'informativeness_test': 0.4845,
            'disentanglement': 0.1727948065336849,
            'completeness': 0.1831941958418396,
        },
        'sap_seed0': 0.0635,
        'dci_seed1': {
            'informativeness_train': 0.952,
            'informativeness_test': 0.482,
            'disentanglement': 0.1728049646084625,
            'completeness': 0.18305930746923377,
        },
        'sap_seed1': 0.0635,
        'dci_seed2': {
            'informativeness_train': 0.9537500000000001,
            'informativeness_test': 0.482,
            'disentanglement': 0.17535042231539594,
            'completeness': 0.18372128950614072,
        },
        'sap_seed2': 0.0635,
        'sap_continuous': 0.1760785947306308,
    },
    'float64': {
        'discretized_first_rows': [[18, 4, 11, 5, 12, 9], [8, 10, 8, 12, 10, 8], [11, 6, 12, 10, 8, 7], [15, 11, 15, 11, 10, 4], [9, 6, 11, 11, 12, 7]],
        'discrete_mi': [[0.02549408107184672, 0.941790733125945, 0.10759086673256493, 0.08369207678339026], [0.23381352059001323, 0.1647850886481474, 0.14602566990652668, 0.17183736375561579], [0.12438719424161995, 0.05711790974430993, 0.0841023649758576, 0.4229557696025457], [0.08915500488288515, 0.5692443581473604, 0.08889265925149935, 0.07780362177745156], [0.06916179331931654, 0.040303853158758195, 0.11042489370091943, 0.08183600173483302], [0.017944431211334735, 0.05690314826606618, 0.0855773988780186, 0.05999663260054416]],
        'entropy': [1.0985451397419945, 1.7895668577423152, 2.3012402379790635, 2.0777201521309108],
        'mig': 0.11102994949551943,
        'modularity': 0.7937351309671589,
        'explicitness_train': 0.8473670826338946,
        'explicitness_test': 0.8317175131579837,
        'gaussian_total_correlation': 0.7721125314411177,
        'gaussian_wasserstein_correlation': 0.3778430505354704,
        'gaussian_wasserstein_correlation_norm': 0.13744621081504388,
        'mutual_info_score': 0.19295875828425907,
        'irs': 0.4712478438835902,
        'dci_seed0': {
            'informativeness_train': 0.952,
            'informativeness_test': 0.4845,
            'disentanglement': 0.1727948065336849,
            'completeness': 0.1831941958418396,
        },
        'sap_seed0': 0.0635,
        'dci_seed1': {
            'informativeness_train': 0.952,
            'informativeness_test': 0.482,
            'disentanglement': 0.1728049646084625,
            'completeness': 0.18305930746923377,
        },
        'sap_seed1': 0.0635,
        'dci_seed2': {
            'informativeness_train': 0.9537500000000001,
            'informativeness_test': 0.482,
            'disentanglement': 0.17535042231539594,
            'completeness': 0.18372128950614072,
        },
        'sap_seed2': 0.0635,
        'sap_continuous': 0.17607859404632953,
    },
    'sampled': {
        'mig': {
            'discrete_mig': 0.09109794263757469,
        },
        'unsupervised': {
            'gaussian_total_correlation': 2.1157379898656785,
            'gaussian_wasserstein_correlation': 0.2178675986470131,
            'gaussian_wasserstein_correlation_norm': 0.23112100381490028,
            'mutual_info_score': 0.5680350533393158,
        },
        'modularity_explicitness': {
            'modularity_score': 0.8902237230747087,
            'explicitness_score_train': 0.8342704035732524,
            'explicitness_score_test': 0.8210406271263191,
        },
        'irs': {
            'IRS': 0.5254441043453231,
            'num_active_dims': -516.1654052734375,
        },
        'beta_vae': {
            'train_accuracy': 0.5333333333333333,
            'eval_accuracy': 0.5066666666666667,
        },
        'factor_vae': {
            'train_accuracy': 0.43333333333333335,
            'eval_accuracy': 0.3466666666666667,
            'num_active_dims': 5.0,
        },
        'dci': {
            'informativeness_train': 1.0,
            'informativeness_test': 0.4733333333333333,
            'disentanglement': 0.10177077756007508,
            'completeness': 0.09580899413278783,
        },
        'sap': {
            'SAP_score': 0.05666666666666668,
        },
        'downstream_logistic_regression': {
            '10:mean_train_accuracy': 0.5499999999999999,
            '10:mean_test_accuracy': 0.2625,
            '10:min_train_accuracy': 0.3,
            '10:min_test_accuracy': 0.15,
            '10:train_accuracy_factor_0': 0.9,
            '10:test_accuracy_factor_0': 0.42,
            '10:train_accuracy_factor_1': 0.5,
            '10:test_accuracy_factor_1': 0.3,
            '10:train_accuracy_factor_2': 0.5,
            '10:test_accuracy_factor_2': 0.15,
            '10:train_accuracy_factor_3': 0.3,
            '10:test_accuracy_factor_3': 0.18,
            '100:mean_train_accuracy': 0.48,
            '100:mean_test_accuracy': 0.3725,
            '100:min_train_accuracy': 0.31,
            '100:min_test_accuracy': 0.17,
            '100:train_accuracy_factor_0': 0.82,
            '100:test_accuracy_factor_0': 0.77,
            '100:train_accuracy_factor_1': 0.37,
            '100:test_accuracy_factor_1': 0.25,
            '100:train_accuracy_factor_2': 0.31,
            '100:test_accuracy_factor_2': 0.17,
            '100:train_accuracy_factor_3': 0.42,
            '100:test_accuracy_factor_3': 0.3,
        },
        'downstream_boosted_trees': {
            '10:mean_train_accuracy': 1.0,
            '10:mean_test_accuracy': 0.2275,
            '10:min_train_accuracy': 1.0,
            '10:min_test_accuracy': 0.12,
            '10:train_accuracy_factor_0': 1.0,
            '10:test_accuracy_factor_0': 0.43,
            '10:train_accuracy_factor_1': 1.0,
            '10:test_accuracy_factor_1': 0.22,
            '10:train_accuracy_factor_2': 1.0,
            '10:test_accuracy_factor_2': 0.14,
            '10:train_accuracy_factor_3': 1.0,
            '10:test_accuracy_factor_3': 0.12,
            '100:mean_train_accuracy': 1.0,
            '100:mean_test_accuracy': 0.395,
            '100:min_train_accuracy': 1.0,
            '100:min_test_accuracy': 0.25,
            '100:train_accuracy_factor_0': 1.0,
            '100:test_accuracy_factor_0': 0.64,
            '100:train_accuracy_factor_1': 1.0,
            '100:test_accuracy_factor_1': 0.36,
            '100:train_accuracy_factor_2': 1.0,
            '100:test_accuracy_factor_2': 0.33,
            '100:train_accuracy_factor_3': 1.0,
            '100:test_accuracy_factor_3': 0.25,
        },
    },
}
