"""bonebase/synth/leak.py: a lesion with its amplitudes at zero paints nothing, so the lesion-free
render keeps the patient's anatomy and loses only the tumour."""

import numpy as np
import pytest

from bonebase.synth.leak import without_lesion
from bonebase.synth.lesions import paint, sample_lesion
from bonebase.synth.phantom import render_radiograph

DIAGNOSES = ("osteosarcoma", "giant_cell_tumour", "osteochondroma", "ewing_sarcoma",
             "chondrosarcoma", "aneurysmal_bone_cyst", "non_ossifying_fibroma")


@pytest.mark.parametrize("dx", DIAGNOSES)
def test_a_zeroed_lesion_paints_nothing(dx):
    lesion = sample_lesion(np.random.default_rng(5), dx, "distal")
    H = W = 96
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    geo = dict(H=H, Rs=9.0, sign=-1.0, joint_y=0.78 * H, cx=W / 2,
               inside=np.abs(xx - W / 2) < 9, dist_out=np.abs(xx - W / 2) - 9,
               radius=lambda y: 9.0)
    mult, add, _ = paint(without_lesion(lesion), yy=yy, xx=xx, geo=geo, view_angle=0.0,
                         rng=np.random.default_rng(0))
    assert np.allclose(mult, 1.0) and np.allclose(add, 0.0)
    mult, add, _ = paint(lesion, yy=yy, xx=xx, geo=geo, view_angle=0.0,
                         rng=np.random.default_rng(0))
    assert not (np.allclose(mult, 1.0) and np.allclose(add, 0.0))  # the real one is visible


def test_lesion_free_render_differs_from_the_real_one_mainly_at_the_lesion():
    lesion = sample_lesion(np.random.default_rng(5), "osteosarcoma", "distal")
    real, box = render_radiograph(np.random.default_rng(1), shape=(96, 80), bone="femur",
                                  segment="distal", age=14, lesion=lesion, view="AP", noise=0.0,
                                  blur=0.0, exposure=1.0)
    free, _ = render_radiograph(np.random.default_rng(1), shape=(96, 80), bone="femur",
                                segment="distal", age=14, lesion=without_lesion(lesion),
                                view="AP", noise=0.0, blur=0.0, exposure=1.0)
    diff = np.abs(real - free)
    x0, y0, x1, y1 = box
    assert diff[y0 : y1 + 1, x0 : x1 + 1].mean() > 2.5 * diff.mean()
    assert np.median(diff) < 1e-3  # same bone, same physis, same scanner
