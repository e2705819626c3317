"""A real ``bentoml serve`` process answering /diagnose for a model trained here.

One tiny model (2 sites x 22 synthetic cases, 64 px, 1 epoch) is trained, put into a private
BentoML model store and served on a free loopback port; the answers are compared with the
in-process Predictor on the same DICOM files.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bonebase.client import DiagnosisClient, DiagnosisError
from bonebase.dicom.pixels import radiograph_to_float
from bonebase.dicom.read import read_full
from bonebase.model.inference import Predictor, UploadError, decode_upload
from tests.worlds import TOKEN  # noqa: F401  (the token of the session's server)

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ``trained`` and ``server``: the tiny model, trained once per session, and one ``bentoml serve``
# of it for the session (tests/worlds.py); the web and security tests use the same ones.


def test_diagnose_matches_in_process_predictor(trained, server):
    predictor = Predictor.from_checkpoint(trained["checkpoint"])
    for path in trained["xrays"]:
        local = predictor.predict([radiograph_to_float(read_full(path.read_bytes()))])[0]
        remote = server["client"].diagnose(path, age=41, sex="F", location="distal_femur")
        for name, p in local["probabilities"].items():
            assert abs(remote["probabilities"][name] - p) < 1e-5
        assert remote["predicted_class"] == local["predicted_class"]
        assert remote["threshold"] == pytest.approx(predictor.threshold)
        assert remote["model_version"] == server["tag"]
        assert remote["dataset_version"] == "serve-test-v1"
        assert remote["task"] == "benign_vs_malignant"
        assert remote["clinical"] == {"age": 41, "sex": "F", "location": "distal_femur"}


def test_gradcam_is_a_png_of_the_model_input(trained, server):
    out = server["client"].diagnose(trained["xrays"][0], gradcam=True)
    import base64

    with Image.open(io.BytesIO(base64.b64decode(out["gradcam_png"]))) as im:
        assert im.format == "PNG" and im.size == (64, 64)


def test_metadata_reports_version_and_notice(server):
    card = server["client"].metadata()
    assert card["model_version"] == server["tag"]
    assert card["dataset_version"] == "serve-test-v1"
    assert "not for clinical" in card["notice"].lower()


def test_errors_are_4xx_json(trained, server):
    client = server["client"]
    data = trained["xrays"][0].read_bytes()
    with pytest.raises(DiagnosisError) as corrupt:
        client.diagnose(data[: len(data) // 3], filename="cut.dcm")
    assert corrupt.value.status == 400 and corrupt.value.code == "corrupt_file"
    with pytest.raises(DiagnosisError) as text:
        client.diagnose(b"hello, not an image", filename="note.txt")
    assert text.value.status == 400 and text.value.code == "not_an_image"
    if trained["others"]:  # a CT/MR slice: DICOM, but not a radiograph
        with pytest.raises(DiagnosisError) as ct:
            client.diagnose(trained["others"][0])
        assert ct.value.status == 422 and ct.value.code == "not_a_radiograph"
    with pytest.raises(DiagnosisError) as big:
        client.diagnose(b"\0" * (3 * 1024 * 1024), filename="big.dcm")
    assert big.value.status == 413
    with pytest.raises(DiagnosisError) as unauth:
        DiagnosisClient(server["url"], token="wrong").diagnose(data)
    assert unauth.value.status == 401


def test_health_routes_need_no_token(server):
    import httpx

    assert httpx.get(server["url"] + "/healthz", timeout=10).status_code == 200
    assert httpx.get(server["url"] + "/readyz", timeout=10).status_code == 200
    assert httpx.get(server["url"] + "/metadata", timeout=10).status_code == 401


def test_decode_upload_png_and_refusals():
    img = (np.linspace(0, 65535, 32 * 48).reshape(32, 48)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    decoded = decode_upload(buf.getvalue())
    assert decoded.kind == "png" and decoded.image.shape == (32, 48)
    assert decoded.image.max() == pytest.approx(1.0) and decoded.image.min() == 0.0
    gif = io.BytesIO()
    Image.new("L", (4, 4)).save(gif, "GIF")
    with pytest.raises(UploadError) as exc:
        decode_upload(gif.getvalue())
    assert exc.value.code == "not_an_image"
    with pytest.raises(UploadError):
        decode_upload(b"")


def test_supervised_server_restarts_on_a_new_tag_and_stops(trained, server, tmp_path):
    """deploy/rollback --serve: one server per home, restarted on the new tag, ready on return."""
    from bonebase.release import supervisor as sup

    env = {
        **os.environ,
        "BENTOML_HOME": str(trained["root"] / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    env.pop("BONEBASE_API_TOKEN", None)
    save = (
        "from bonebase.release.serving import save_to_bentoml as s; "
        f"print(s({str(trained['checkpoint'])!r}, version='m2-test'))"
    )
    subprocess.run([sys.executable, "-c", save], env=env, cwd=REPO, check=True)
    home, port = tmp_path / "home", _free_port()
    try:
        first = sup.start(home, server["tag"], project=REPO, port=port, base_env=env)
        status = sup.status(home)
        assert status["running"] and status["ready"] and status["serving"] == server["tag"]

        second = sup.start(home, "bonebase-diagnosis:m2-test", project=REPO, port=port, base_env=env)
        assert second["pid"] != first["pid"]
        with pytest.raises(ProcessLookupError):
            os.kill(first["pid"], 0)  # the old server is gone, not left beside the new one
        assert sup.status(home)["serving"] == "bonebase-diagnosis:m2-test"
    finally:
        stopped = sup.stop(home)
    assert stopped["tag"] == "bonebase-diagnosis:m2-test"
    assert sup.status(home) == {"running": False}


def test_supervised_server_that_cannot_start_says_why(trained, tmp_path):
    from bonebase.release import supervisor as sup
    from bonebase.release.supervisor import ServeError

    env = {**os.environ, "BENTOML_HOME": str(trained["root"] / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "true"}  # fmt: skip
    with pytest.raises(ServeError, match="did not become ready"):
        sup.start(tmp_path, "bonebase-diagnosis:no-such-tag", project=REPO,
                  port=_free_port(), base_env=env, wait_s=90)  # fmt: skip
    assert sup.read_state(tmp_path) is None
