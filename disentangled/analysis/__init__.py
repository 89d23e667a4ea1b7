"""The paper's analyses of a results table: statistics, figures and the HTML report.

``write_report(table_path, out_dir, study_dir=None)`` writes ``out_dir/index.html``; the
statistics are in :mod:`disentangled.analysis.stats`, the figures in
:mod:`disentangled.analysis.figures`.
"""

from __future__ import annotations


def write_report(*args, **kwargs):
    from .report import write_report as _write_report

    return _write_report(*args, **kwargs)


__all__ = ["write_report"]
