"""Obuchowski-Rockette MRMC analysis validated on the Van Dyke et al. (1993) reader study.

Data (tests/data/vandyke.csv): 5 readers x 2 modalities (1 = cine MRI, 2 = spin-echo MRI) x 114
cases (45 diseased), ratings 1-5, converted from dpc10ster/RJafroc inst/extdata/datasets/VD.lrc
(commit d6953431; the same data as RJafroc ``dataset02`` and MRMCaov ``VanDyke``). The first 20
rows agree with the ``VanDyke`` listing printed in the MRMCaov JSS manuscript.

Reference values, all printed in public sources (not recomputed):
- [README] brian-j-smith/MRMCaov README.md (v0.1.5), ``summary(mrmc(empirical_auc(truth,
  rating), treatment, reader, case, data = VanDyke))``: RRRC with jackknife covariance.
- [JSS] brian-j-smith/MRMCaov docs/jss/MRMCaov.tex (commit f1c63dc): DeLong RRRC, fixed readers
  (FRRC), fixed cases (RRFC), single-reader jackknife SEs, and ``binary_sens`` at rating >= 3.
- [RJafrocBook] dpc10ster RJafroc book, "Coding illustrations of the OR method":
  ``UtilFigureOfMerit(dataset02, FOM = "Wilcoxon")`` per-reader AUCs and OR variance components.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from bonebase.errors import InputError
from bonebase.stats import mrmc

VANDYKE = Path(__file__).resolve().parents[1] / "data" / "vandyke.csv"


def ref(value: float):
    """Agreement with a published figure to 3 decimals (we match to the printed digits)."""
    return pytest.approx(value, abs=5e-4)


@pytest.fixture(scope="module")
def jk() -> dict:
    return mrmc.analyze_csv(VANDYKE)


def test_auc_per_reader_and_mean(jk):
    # [RJafrocBook] foms: trt0 = modality 1, trt1 = modality 2, rdr0..rdr4 = readers 1..5
    published = {
        "1": (0.9196457, 0.9478261),
        "2": (0.8587762, 0.9053140),
        "3": (0.9038647, 0.9217391),
        "4": (0.9731079, 0.9993559),
        "5": (0.8297907, 0.9299517),
    }
    for reader, (a1, a2) in published.items():
        assert jk["per_reader_auc"][reader]["1"] == pytest.approx(a1, abs=1e-7)
        assert jk["per_reader_auc"][reader]["2"] == pytest.approx(a2, abs=1e-7)
    # [README] treatment estimates 0.8970370 and 0.9408374
    assert jk["auc"] == {"1": ref(0.8970370), "2": ref(0.9408374)}
    assert jk["modalities"] == ["1", "2"]
    assert jk["covariance"] == "jackknife"


def test_variance_components_jackknife(jk):
    # [README] / [RJafrocBook] VarCom and TRanova
    vc = jk["variance_components"]
    assert vc["ms_t"] == pytest.approx(0.004796171, rel=1e-6)
    assert vc["ms_tr"] == pytest.approx(0.0005510306, rel=1e-6)
    assert vc["var"] == pytest.approx(0.0008022883, rel=1e-6)
    assert vc["cov1"] == pytest.approx(0.0003466137, rel=1e-6)
    assert vc["cov2"] == pytest.approx(0.0003440748, rel=1e-6)
    assert vc["cov3"] == pytest.approx(0.0002390284, rel=1e-6)


def test_rrrc_jackknife_matches_mrmcaov(jk):
    # [README]: F 4.456319, df (1, 15.25967), p 0.05166569, 1 - 2 = -0.04380032,
    # CI (-0.0879594986, 0.0003588544)
    r = jk["rrrc"]
    assert r["difference"] == ref(-0.04380032)
    assert r["ci"] == [ref(-0.0879594986), ref(0.0003588544)]
    assert r["f"] == ref(4.456319)
    assert r["df_numerator"] == 1
    assert r["df_denominator"] == ref(15.25967)
    assert r["p"] == ref(0.05166569)
    assert r["pairwise"][0]["t"] ** 2 == pytest.approx(r["f"])


def test_frrc_jackknife_matches_mrmcaov(jk):
    # [JSS] fixed(reader): X2 5.475953, df 1, p 0.01927984, CI (-0.08048591, -0.00711473)
    r = jk["frrc"]
    assert r["difference"] == ref(-0.04380032)
    assert r["ci"] == [ref(-0.08048591), ref(-0.00711473)]
    assert r["chi2"] == ref(5.475953)
    assert r["df"] == 1
    assert r["p"] == ref(0.01927984)
    assert r["pairwise"][0]["z"] == ref(-2.340075)


def test_rrfc_matches_mrmcaov(jk):
    # [JSS] fixed(case): F 8.704, df (1, 4), p 0.04195875, CI (-0.08502022, -0.00258042)
    r = jk["rrfc"]
    assert r["difference"] == ref(-0.04380032)
    assert r["ci"] == [ref(-0.08502022), ref(-0.00258042)]
    assert r["f"] == ref(8.704)
    assert (r["df_numerator"], r["df"]) == (1, 4)
    assert r["p"] == ref(0.04195875)
    assert r["pairwise"][0]["t"] == ref(-2.950254)


def test_rrrc_delong_matches_mrmcaov():
    # [JSS] cov = DeLong: Error 0.0007921325, Cov1 0.0003420090, Cov2 0.0003395265,
    # Cov3 0.0002358497; F 4.484854, df2 15.06611, p 0.05123303, CI (-0.0878671960, 0.0002665519)
    res = mrmc.analyze(pd.read_csv(VANDYKE), covariance="delong")
    vc = res["variance_components"]
    assert (vc["var"], vc["cov1"], vc["cov2"], vc["cov3"]) == pytest.approx(
        (0.0007921325, 0.0003420090, 0.0003395265, 0.0002358497), rel=1e-6
    )
    r = res["rrrc"]
    assert r["f"] == ref(4.484854)
    assert r["df_denominator"] == ref(15.06611)
    assert r["p"] == ref(0.05123303)
    assert r["ci"] == [ref(-0.0878671960), ref(0.0002665519)]
    assert res["covariance"] == "delong"


def test_single_reader_jackknife_standard_errors():
    # [JSS] fixed readers, "Single reader 95% CIs" StdErr, modality 1 then 2 per reader
    published = [0.0301255164, 0.0363753335, 0.0282594118, 0.0173388332, 0.0417201720,
                 0.0221416887, 0.0298151099, 0.0297673065, 0.0007213348, 0.0262023046]  # fmt: skip
    df = pd.read_csv(VANDYKE).sort_values(["modality", "reader", "case"])
    truth = df[(df.reader == 1) & (df.modality == 1)].truth.to_numpy()
    _, cov = mrmc.jackknife_covariance(truth, df.score.to_numpy(float).reshape(10, 114))
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), published, rtol=1e-6)


def test_sensitivity_at_threshold_matches_mrmcaov():
    # [JSS] binary_sens(truth, rating >= 3): per reader 0.889 0.778 0.822 0.933 0.689 (mod 1),
    # 0.978 0.822 0.911 1 0.889 (mod 2); means 0.8222222 and 0.9200000
    res = mrmc.analyze_csv(VANDYKE, threshold=3)
    op = res["operating_point"]
    assert op["sensitivity"] == {"1": ref(0.8222222), "2": ref(0.92)}
    got = [op["per_reader"][r][m]["sensitivity"] for m in "12" for r in "12345"]
    expected = [0.889, 0.778, 0.822, 0.933, 0.689, 0.978, 0.822, 0.911, 1.0, 0.889]
    assert got == pytest.approx(expected, abs=5e-4)
    assert 0 < op["specificity"]["1"] < 1


def test_closed_form_jackknife_equals_brute_force():
    rng = np.random.default_rng(5)
    truth = np.r_[np.ones(9, int), np.zeros(12, int)]
    scores = np.round(truth + rng.normal(size=(4, 21)), 1)  # ties included
    _, cov = mrmc.jackknife_covariance(truth, scores)
    keep = ~np.eye(21, dtype=bool)
    loo = np.array([[roc_auc_score(truth[k], s[k]) for k in keep] for s in scores])
    n = 21
    dev = loo - loo.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(cov, (n - 1) / n * dev @ dev.T, atol=1e-14)


def test_model_reader_is_reported_apart():
    df = pd.read_csv(VANDYKE)
    model = df[(df.reader == 1) & (df.modality == 2)].assign(reader="model", modality=2)
    model["score"] = model["score"] + 0.01 * np.arange(len(model))  # a continuous output
    res = mrmc.analyze(pd.concat([df, model]))
    assert res["readers"] == ["1", "2", "3", "4", "5"]
    assert res["rrrc"]["f"] == ref(4.456319)  # humans-only analysis unchanged
    expected = roc_auc_score(model.truth, model.score)
    assert res["model"]["auc"] == {"2": pytest.approx(expected)}
    assert res["model"]["difference"]["2"] == pytest.approx(expected - res["auc"]["2"])
    assert res["per_reader_auc"]["model"] == {"2": pytest.approx(expected)}
    assert "model" in mrmc.format_report(res)


def test_three_modalities_global_and_pairwise():
    df = pd.read_csv(VANDYKE)
    third = df[df.modality == 2].assign(modality=3)
    res = mrmc.analyze(pd.concat([df, third]))
    assert res["modalities"] == ["1", "2", "3"]
    for key in ("rrrc", "frrc", "rrfc"):
        assert res[key]["difference"] is None and res[key]["ci"] is None
        pairs = {p["comparison"]: p for p in res[key]["pairwise"]}
        assert set(pairs) == {"1 - 2", "1 - 3", "2 - 3"}
        assert pairs["1 - 2"]["difference"] == ref(-0.04380032)
        assert pairs["2 - 3"]["difference"] == 0.0 and pairs["2 - 3"]["p"] == 1.0
    assert res["rrrc"]["df_numerator"] == 2 and res["frrc"]["df"] == 2
    assert 0 < res["rrrc"]["p"] < 1


def test_format_report_lists_all_analyses(jk):
    text = mrmc.format_report(jk)
    for needle in ("random readers, random cases", "fixed readers, random cases",
                   "random readers, fixed cases", "0.8970", "0.9408", "F=4.456", "1, 15.26",
                   "chi2=5.476", "[-0.0880, +0.0004]"):  # fmt: skip
        assert needle in text


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.csv"
    p.write_text(text)
    return p


GOOD = "reader,modality,case,truth,score\n" + "".join(
    f"{r},{m},c{c},{int(c >= 3)},{(2 * c + ri + mi) % 5}\n"
    for c in range(6)
    for ri, r in enumerate("ab")
    for mi, m in enumerate("xy")
)


def test_small_valid_csv_runs(tmp_path):
    res = mrmc.analyze_csv(_write(tmp_path, GOOD))
    assert res["n_cases"] == 6 and res["n_diseased"] == 3
    assert set(res["per_reader_auc"]) == {"a", "b"}


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda t: t.replace("truth,score", "truth,rating"), r"missing column\(s\) score"),
        (lambda t: t.replace("a,x,c0,0,0", "a,x,c0,0,high"), r"line 2: column 'score' is 'high'"),
        (lambda t: t.replace("a,x,c0,0,0", "a,x,c0,2,0"), r"line 2: column 'truth' is .*0 .*or 1"),
        (lambda t: t.replace("a,x,c0,0,0", "a,x,c0,1,0"), r"case 'c0' has both truth 0 and 1"),
        (lambda t: t.replace("b,y,c5,1,2\n", ""), r"reader 'b' has no score for case 'c5'"),
        (lambda t: t + "a,x,c0,0,3\n", r"line 26: reader 'a' scored case 'c0' .* twice"),
        (lambda t: "\n".join(ln for ln in t.split("\n") if ",y," not in ln), r"needs >= 2"),
        (lambda t: "\n".join(ln for ln in t.split("\n") if not ln.startswith("b,")), "2 readers"),
    ],
)
def test_csv_errors_name_row_and_column(tmp_path, edit, pattern):
    path = _write(tmp_path, edit(GOOD))
    with pytest.raises(InputError, match=pattern) as exc:
        mrmc.analyze_csv(path)
    assert str(path) in str(exc.value)


def test_missing_file_and_bad_covariance(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        mrmc.analyze_csv(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="covariance"):
        mrmc.analyze_csv(_write(tmp_path, GOOD), covariance="bootstrap")
