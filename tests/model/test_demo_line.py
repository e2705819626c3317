"""make demo's diagnosis line names the rule that decided the class (#21: it printed
"malignant" next to p(benign) = 0.78 without the threshold)."""

from bonebase.demo_cli import diagnosis_line


def test_line_names_the_locked_threshold_and_the_comparison():
    line = diagnosis_line({"probabilities": {"benign": 0.78, "malignant": 0.22},
                           "threshold": 0.18, "predicted_class": "malignant",
                           "model_version": "bonebase-diagnosis:1", "gradcam_png": "x"})
    assert line.startswith("malignant because p(malignant) 0.22 >= the model's locked threshold 0.18")
    below = diagnosis_line({"probabilities": {"benign": 0.9, "malignant": 0.1}, "threshold": 0.18,
                            "predicted_class": "benign", "model_version": "m"})
    assert "p(malignant) 0.10 < the model's locked threshold 0.18" in below


def test_line_says_when_the_input_is_unlike_the_training_data():
    line = diagnosis_line({"probabilities": {"a": 0.2, "b": 0.3, "c": 0.5}, "threshold": None,
                           "predicted_class": "c", "model_version": "m",
                           "out_of_distribution": {"flag": True, "reasons": ["feature score 9.1"]}})
    assert "the most probable class" in line and "unlike the training data: feature score" in line
