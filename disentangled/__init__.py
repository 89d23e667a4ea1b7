"""disentangled: reproduce and extend the study of unsupervised disentanglement
(Locatello et al., ICML 2019) in PyTorch."""

__version__ = "0.1.0"

# the public entry points, imported when first used (the command line starts without them)
_LAZY = {"score": "scoring", "score_udr": "scoring"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
