"""The models page's heat-map and out-of-distribution lines (web/routes/models.py) from the
metrics an evaluation writes."""

from web.routes.models import explanation_line, ood_line


def test_explanation_line_shows_scores_with_cis_of_the_judged_set():
    metrics = {"explanation": {"method": "hirescam", "layer": "layer3", "external": {"all": {
        "n": 365, "pointing_game": 0.41, "pointing_game_lo": 0.36, "pointing_game_hi": 0.46,
        "weighting_game": 0.12, "weighting_game_lo": 0.11, "weighting_game_hi": 0.13,
        "iou": 0.08}}}}
    line = explanation_line(metrics)
    assert line.startswith("pointing 0.410 (0.360–0.460); weighting 0.120 (0.110–0.130); IoU 0.080")
    assert line.endswith("hirescam on layer3, external n=365")
    assert explanation_line({"test": {"auc": 0.8}}) == "not scored"
    assert explanation_line(None) == "not scored"


def test_ood_line_only_where_evaluated():
    assert ood_line({}) == ""
    line = ood_line({"ood": {"false_alarm_external": 0.04, "detection_unrelated": 0.9}})
    assert "false alarms 0.040" in line and "detected 0.900" in line
