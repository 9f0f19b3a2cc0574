"""LearningCurves: window-mean losses, validations, CSV round trip, the resume merge, the figure."""
import cv2
import numpy as np
import pytest

from rt4ksr_arch.curves import LearningCurves


def test_losses_are_window_means_and_validations_replace_a_repeated_iteration():
    curves = LearningCurves(loss_every=3)
    for it in range(1, 8):
        curves.add_loss(it, {'l_pix': float(it)})
    assert curves.losses == {'l_pix': [(3, 2.0), (6, 5.0)]}  # iteration 7 waits for its window
    curves.add_validation('Set5', 6, {'psnr': 30.0}, {'psnr': 29.0})
    curves.add_validation('Set5', 3, {'psnr': 28.0})
    curves.add_validation('Set5', 6, {'psnr': 31.0})
    assert curves.metrics == {'Set5': {'psnr': [(3, 28.0), (6, 31.0)]}} and curves.baselines == {'Set5': {'psnr': 29.0}}


def test_csv_round_trip_and_resume_merge():
    curves = LearningCurves(loss_every=2)
    for it in range(1, 5):
        curves.add_loss(it, {'l_pix': 0.1 / it})
    curves.add_validation('Set5', 2, {'psnr': 30.5, 'ssim': 0.91}, {'psnr': 29.25, 'ssim': 0.9})
    curves.add_validation('Set5', 4, {'psnr': 30.75, 'ssim': 0.92})
    text = curves.csv()
    assert LearningCurves.from_csv(text, loss_every=2).csv() == text
    assert 'train,,l_pix,2,0.075,2' in text.splitlines()  # the mean of iterations 1-2, and it says over how many
    legacy = '\n'.join(','.join(row.split(',')[:5]) for row in text.splitlines())  # written before mean_of
    assert LearningCurves.from_csv(legacy, loss_every=2).csv() == text
    state = LearningCurves()  # a state saved at iteration 2, before that iteration's validation
    state.load_state_dict({'loss_every': 2, 'metrics': {}, 'baselines': {}, 'losses': {'l_pix': [(2, 0.075)]}})
    state.merge_validations(LearningCurves.from_csv(text), up_to=2)
    assert state.metrics == {'Set5': {'psnr': [(2, 30.5)], 'ssim': [(2, 0.91)]}}  # not iteration 4: not run yet
    assert state.baselines == {'Set5': {'psnr': 29.25, 'ssim': 0.9}}
    with pytest.raises(ValueError, match='not a learning-curves CSV'):
        LearningCurves.from_csv('a,b\n1,2\n')


def test_figure_is_a_png_with_a_panel_per_metric_and_the_loss(tmp_path):
    curves = LearningCurves(loss_every=1)
    curves.add_loss(1, {'l_pix': 0.1})
    curves.add_validation('Set5', 1, {'psnr': 30.0, 'ssim': 0.9}, {'psnr': 29.0, 'ssim': 0.89})
    csv_path, png_path = curves.write(str(tmp_path), title='t')
    one = cv2.imread(png_path)
    assert one is not None and one.shape[1] == 1500  # three 5-inch panels at 100 dpi
    assert open(csv_path).read() == curves.csv()
    empty = cv2.imdecode(np.frombuffer(LearningCurves().figure_png(), np.uint8), cv2.IMREAD_COLOR)
    assert empty is not None and empty.shape[1] == 500  # before any validation: the loss panel alone
