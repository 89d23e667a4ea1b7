"""disentangled: reproduce and extend the study of unsupervised disentanglement
(Locatello et al., ICML 2019) in PyTorch."""

__version__ = "0.1.0"
