"""The HTML report: written from synthetic tables, complete, and loading cleanly in Chromium."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from analysis_support import synthetic_table
from typer.testing import CliRunner

from disentangled.analysis import write_report
from disentangled.cli.report import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = ["tc", "metric-correlation", "distributions", "unsupervised", "transfer", "table1", "downstream", "variance", "runs"]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.sections = [], [], []
        self._in = None
        self.classes: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a" and "href" in attrs and not attrs["href"].startswith("#"):
            self.links.append(attrs["href"])
        elif tag == "section":
            self.sections.append(attrs["id"])
        elif tag == "p" and attrs.get("class"):
            self._in = attrs["class"]
            self.classes.setdefault(self._in, []).append("")

    def handle_data(self, data):
        if self._in:
            self.classes[self._in][-1] += data

    def handle_endtag(self, tag):
        if tag == "p":
            self._in = None


def parse(index: Path) -> _Page:
    page = _Page()
    page.feed(index.read_text(encoding="utf-8"))
    return page


def small_table(**kw) -> pd.DataFrame:
    kw.setdefault("methods", ("beta_vae", "dip_vae_i"))
    kw.setdefault("seeds", (0, 1, 2))
    return synthetic_table(**kw)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    table_path = out / "results.parquet"
    small_table().to_parquet(table_path)
    return write_report(table_path, out / "site", num_draws=2000)


def test_report_has_every_analysis_with_figures_readings_and_csv(full_report):
    site = full_report.parent
    page = parse(full_report)
    assert page.sections == SECTIONS
    text = full_report.read_text()
    assert "this analysis failed" not in text
    readings = page.classes.get("reading", [])
    assert len(readings) == len(SECTIONS)  # every section, runs included, reads its figure
    for image in page.images:
        assert (site / image).is_file(), image
        assert image.startswith("figures/") and image.endswith(".png")
    assert len(page.images) >= 12
    for link in page.links:
        assert (site / link).is_file(), link
    for name in ("tc_by_strength.csv", "tc_trends.csv", "metric_rank_correlation.csv", "score_distributions.csv", "unsupervised_vs_metrics.csv",
                 "transfer_rank_correlation.csv", "table1.csv", "downstream_rank_correlation.csv", "variance_explained.csv", "runs.csv"):
        assert (site / name).is_file(), name
    table1 = pd.read_csv(site / "table1.csv")
    assert table1["probability"].between(0, 1).all() and (table1["draws"] == 2000).all()
    variance = pd.read_csv(site / "variance_explained.csv")
    assert len(variance) == 2 * 6 and variance["method_x_strength"].ge(variance["method"] - 1e-12).all()
    assert "Missing:" in text and "--study-dir" in text  # the runs' pictures need the study folder


def test_readings_state_what_the_synthetic_study_was_built_to_show(full_report):
    readings = " ".join(parse(full_report).classes["reading"])
    assert re.search(r"sampled TC falls with regularisation for [^;]*β-VAE", readings)
    assert re.search(r"mean TC falls with regularisation for no method and rises for β-VAE", readings)
    assert "Modularity's mean |ρ| with the others" in readings
    assert "(paper 37%)" in readings and "(paper 59%)" in readings


def test_missing_data_is_explained_not_fatal(tmp_path):
    keep = ["mig.discrete_mig", "dci.disentanglement"]
    table = small_table(datasets=("dsprites_full",), seeds=(0,))
    table = table[table["score_key"].isin(keep)].drop(columns=["train.elbo", "train.kl_loss", "train.reconstruction_loss"])
    table.to_csv(tmp_path / "results.csv", index=False)
    index = write_report(tmp_path / "results.csv", tmp_path / "site", num_draws=100)
    page = parse(index)
    assert page.sections == SECTIONS
    missing = " ".join(page.classes["missing"])
    assert "this analysis failed" not in index.read_text()
    assert "needs `unsupervised.gaussian_total_correlation`" in missing  # Fig. 1
    assert "unsupervised scores" in missing  # Fig. 4 centre
    assert "needs at least two data sets" in missing  # transfer
    assert "two seeds" in missing  # Table 1, same data set
    assert "downstream" in missing
    for image in page.images:
        assert (index.parent / image).is_file()


def test_empty_table_gives_a_page(tmp_path):
    table = pd.DataFrame(columns=["model_num", "run_id", "representation", "metric", "score_key", "value"])
    table.to_parquet(tmp_path / "results.parquet")
    index = write_report(tmp_path / "results.parquet", tmp_path / "site")
    assert "no runs" in index.read_text()


def test_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="disentangled study collect"):
        write_report(tmp_path / "nope.parquet", tmp_path / "site")


def test_report_command(tmp_path):
    small_table(datasets=("dsprites_full",), seeds=(0, 1)).to_parquet(tmp_path / "results.parquet")
    app = typer.Typer()
    app.command()(report)
    result = CliRunner().invoke(app, [str(tmp_path / "results.parquet"), "-o", str(tmp_path / "site"), "--draws", "200"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "site" / "index.html").is_file()
    assert "wrote" in result.output


# -- in a browser --------------------------------------------------------------------------


def load_in_chromium(index: Path, tmp_path: Path) -> tuple[str, str]:
    """The DOM after the page's load event, and Chromium's log (console messages included)."""
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=10000", "--dump-dom", index.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)  # the assert shows stderr
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_report_loads_in_chromium_with_every_image_and_no_console_errors(full_report, tmp_path):
    dom, log = load_in_chromium(full_report, tmp_path)
    title = re.search(r"<title>(.*?)</title>", dom).group(1)
    shown, total = map(int, re.search(r"\[images (\d+)/(\d+)\]", title).groups())
    assert total == len(parse(full_report).images) and total >= 12
    assert shown == total, title
    assert 'data-images="ok"' in dom
    console = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_the_browser_check_sees_a_broken_image(full_report, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(full_report.parent, site)
    (site / "figures" / "table1.png").unlink()
    dom, _ = load_in_chromium(site / "index.html", tmp_path)
    assert "broken: figures/table1.png" in dom


def test_report_links_every_runs_pictures_drawing_missing_ones(tmp_path):
    from disentangled import config
    from disentangled.train import train

    study = tmp_path / "study"
    cfg = config.load(None, ["data.name=dummy_data", "train.steps=2", "train.batch_size=4", "train.eval_batches=1"])
    train(cfg, study / "runs" / "00000", progress=False)
    table = small_table(datasets=("dummy_data",), methods=("beta_vae",), seeds=(0,))  # model_num 0, 1, 2
    table.to_parquet(tmp_path / "results.parquet")
    index = write_report(tmp_path / "results.parquet", tmp_path / "site", study_dir=study, num_draws=100)
    vis = study / "runs" / "00000" / "visualizations"
    assert (vis / "manifest.json").is_file()  # drawn by the report, cheaply
    page = parse(index)
    thumbs = [i for i in page.images if i.endswith(".gif")]
    assert thumbs == ["../study/runs/00000/visualizations/animated_traversals/fitted_gaussian_cycle0.gif"]
    assert "../study/runs/00000/visualizations/reconstructions.png" in page.links
    for link in page.links:
        assert (index.parent / link).is_file(), link
    text = index.read_text()
    assert "not trained (no run folder)" in text and "1 with pictures" in text and "2 not trained" in text
    if CHROMIUM is not None:
        dom, log = load_in_chromium(index, tmp_path)
        assert 'data-images="ok"' in dom
        assert not [line for line in log.splitlines() if "CONSOLE" in line]


# -- the follow-up studies' sections -------------------------------------------------------------

MIG, DCI = "mig.discrete_mig", "dci.disentanglement"
FOLLOWUPS = SECTIONS[:-1] + ["udr", "fairness", "stability", "runs"]
GBT_LARGEST = "downstream_boosted_trees.1000.mean_test_accuracy"  # small_table's largest downstream size


def followup_table() -> pd.DataFrame:
    """small_table() evaluated twice per run, MIG and DCI also at 100 and 1,000 training points
    (with_evaluations: the primary evaluation is small_table() itself), plus UDR and unfairness
    built from the scores: UDR increases with MIG on dSprites and decreases on Color-dSprites;
    the mean unfairness is 1 - DCI on dSprites and the GBT accuracy on Color-dSprites."""
    from analysis_support import add_scores, with_evaluations

    from disentangled.analysis import stats as st

    base = small_table()
    frame = st.models(base).set_index("model_num")
    dsprites = frame["dataset"] == "dsprites_full"
    udr = (2 * frame[MIG] + 1).where(dsprites, -frame[MIG])
    unfair = (1 - frame[DCI]).where(dsprites, frame[GBT_LARGEST])
    table = with_evaluations(base, num_eval=2, sizes=(100, 1000), swept=(MIG, DCI))
    table = add_scores(table, "udr", {st.UDR_KEY: udr.to_dict()})
    table = add_scores(table, "fairness", {st.FAIRNESS["mean unfairness"]: unfair.to_dict(),
                                           st.FAIRNESS["max unfairness"]: (unfair + 0.1).to_dict()})
    return table


@pytest.fixture(scope="module")
def followup_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("followups")
    followup_table().to_parquet(out / "results.parquet")
    return write_report(out / "results.parquet", out / "site", num_draws=2000)


def _section(index: Path, key: str) -> str:
    text = index.read_text()
    part = text[text.index(f'id="{key}"'):]
    return part[:part.index("</section>")]


def test_followup_sections_appear_with_figures_readings_and_exact_numbers(followup_report):
    site = followup_report.parent
    page = parse(followup_report)
    assert page.sections == FOLLOWUPS
    assert "this analysis failed" not in followup_report.read_text()
    assert len(page.classes["reading"]) == len(FOLLOWUPS)
    for image in page.images:
        assert (site / image).is_file(), image
    for key, figures in (("udr", ["udr_against_metrics.png"]), ("fairness", ["fairness_rank_correlation.png", "fairness_scatter.png"]),
                         ("stability", ["metric_spread_across_repetitions.png", "metric_rank_across_sample_sizes.png"])):
        for name in figures:
            assert f'src="figures/{name}"' in _section(followup_report, key), name

    udr = pd.read_csv(site / "udr_against_metrics.csv").set_index(["dataset", "metric"])["spearman"]
    assert udr[("dsprites_full", "MIG")] == pytest.approx(1.0) and udr[("color_dsprites", "MIG")] == pytest.approx(-1.0)
    assert "MIG +0.00" in _section(followup_report, "udr")  # the mean of +1 and -1

    fair = pd.read_csv(site / "fairness_rank_correlation.csv").set_index(["dataset", "unfairness", "against"])["spearman"]
    assert fair[("dsprites_full", "mean unfairness", "DCI")] == pytest.approx(-1.0)
    assert fair[("color_dsprites", "mean unfairness", "GBT acc@1000")] == pytest.approx(1.0)
    assert fair[("dsprites_full", "max unfairness", "DCI")] == pytest.approx(-1.0)  # a shift keeps the ranking

    # every run's two evaluations differ by exactly 10 (with_evaluations): within-run SD sqrt(50);
    # the SD between runs is that of the run means, i.e. of small_table()'s own scores
    spread = pd.read_csv(site / "metric_spread_across_repetitions.csv")
    np.testing.assert_allclose(spread["within_sd"], math.sqrt(50))
    from disentangled.analysis import stats as st

    base = st.models(small_table())
    own = spread[spread["sample_size"].isna() & (spread["metric"] == "MIG") & (spread["dataset"] == "dsprites_full")].iloc[0]
    expected = base.loc[base["dataset"] == "dsprites_full", MIG].std(ddof=1)
    assert own["between_sd"] == pytest.approx(expected) and own["ratio"] == pytest.approx(math.sqrt(50) / expected)
    assert set(zip(spread["metric"], spread["sample_size"].fillna(0))) >= {("MIG", 100), ("MIG", 1000), ("DCI", 100), ("MIG", 0)}
    # the swept sizes shift every run by the same amount: the ranking is the same at every size
    ranks = pd.read_csv(site / "metric_rank_across_sample_sizes.csv")
    assert set(ranks["metric"]) == {"MIG", "DCI"} and np.allclose(ranks["spearman"], 1.0)
    stability = _section(followup_report, "stability")
    assert "MIG ρ +1.00 (100 vs 1,000)" in stability and "DCI ρ +1.00 (100 vs 1,000)" in stability
    intro = followup_report.read_text().split("<nav>")[0]
    assert "evaluation repetitions" in intro and "100, 1,000" in intro


def test_repetitions_and_sample_sizes_leave_every_other_section_unchanged(full_report, followup_report):
    # the follow-up table's primary evaluation is small_table(), the full report's table
    for name in ("tc_by_strength.csv", "tc_trends.csv", "metric_rank_correlation.csv", "score_distributions.csv", "method_overlap.csv",
                 "seed_vs_hyperparameter.csv", "unsupervised_vs_metrics.csv", "transfer_rank_correlation.csv", "table1.csv",
                 "downstream_rank_correlation.csv", "variance_explained.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(followup_report.parent / name), pd.read_csv(full_report.parent / name), obj=name)
    runs = pd.read_csv(followup_report.parent / "runs.csv")
    assert len(runs) == 36 and {"udr.model_score", "fairness.mean_fairness.mean_pred.mean_sens"} <= set(runs.columns)


def test_followup_sections_say_what_is_missing(tmp_path):
    from analysis_support import add_scores, with_evaluations

    table = small_table(datasets=("dsprites_full",), methods=("beta_vae",), seeds=(0,))  # runs 0, 1, 2
    table = table[table["score_key"] == MIG]
    table = with_evaluations(table, num_eval=1, sizes=(1000,), swept=(MIG,))  # one evaluation, one size
    table = add_scores(table, "udr", {"udr.model_score": {0: 0.5, 1: 0.6}})  # two runs: no rank correlation
    table = add_scores(table, "fairness", {"fairness.mean_fairness.mean_pred.mean_sens": {0: 0.1, 1: 0.2}})
    table.to_parquet(tmp_path / "results.parquet")
    index = write_report(tmp_path / "results.parquet", tmp_path / "site", num_draws=100)
    assert parse(index).sections == FOLLOWUPS
    assert "this analysis failed" not in index.read_text()
    assert "at least three runs holding both UDR and a metric" in _section(index, "udr")
    assert "no defined rank correlation" in _section(index, "fairness")
    stability = _section(index, "stability")
    assert "evaluated at least twice on the same run" in stability and "two or more sample sizes" in stability


def test_tc_trend_with_two_hyperparameter_values_and_one_run_each(tmp_path):
    # sampled TC = exp(1.5 - 2 rank + 0.2 noise) falls and mean TC = exp(1 + 2.5 rank + ...) rises
    # between the two values by far more than the noise: Spearman of two runs is -1 and +1
    table = small_table(datasets=("dsprites_full",), methods=("beta_vae",), seeds=(0,), grids={"beta_vae": ("beta", [1.0, 4.0])})
    table.to_parquet(tmp_path / "results.parquet")
    index = write_report(tmp_path / "results.parquet", tmp_path / "site", num_draws=100)
    tc = _section(index, "tc")
    assert "sampled TC falls with regularisation for β-VAE (-1.00) and rises for no method" in tc
    assert "mean TC falls with regularisation for no method and rises for β-VAE (+1.00)" in tc
    assert "ρ = ±1 gives only the direction of the change" in tc
    assert "single hyperparameter value" not in tc and "Missing" not in tc
    trends = pd.read_csv(tmp_path / "site" / "tc_trends.csv").set_index("representation")["spearman_strength_tc"]
    assert trends["sampled"] == -1.0 and trends["mean"] == 1.0


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_followup_report_loads_in_chromium_with_every_image(followup_report, tmp_path):
    dom, log = load_in_chromium(followup_report, tmp_path)
    assert 'data-images="ok"' in dom
    assert not [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
