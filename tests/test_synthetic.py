import numpy as np
import pytest

from scmodal_jax.data.synthetic import make_multimodal


def test_synthetic_ground_truth():
    data = make_multimodal(n_cells=400, n_features=(60, 20), n_linked=8, n_clusters=4, paired=True, seed=1)
    assert [x.shape for x in data.datasets] == [(400, 60), (400, 20)]
    for x in data.datasets:
        np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    np.testing.assert_array_equal(data.labels[0], data.labels[1])  # paired: same hidden cells
    np.testing.assert_array_equal(data.hidden_state[0], data.hidden_state[1])
    # Linked columns carry the same signal in both modalities (weakly: noisy and distorted), others do not.
    linked_r = [np.corrcoef(data.datasets[0][:, j], data.datasets[1][:, j])[0, 1] for j in range(8)]
    other_r = np.corrcoef(data.datasets[0][:, 10], data.datasets[1][:, 10])[0, 1]
    assert np.mean(linked_r) > 0.3 and np.mean(linked_r) > abs(other_r)
    again = make_multimodal(n_cells=400, n_features=(60, 20), n_linked=8, n_clusters=4, paired=True, seed=1)
    np.testing.assert_array_equal(again.datasets[1], data.datasets[1])


def test_synthetic_unpaired_and_bad_arguments():
    data = make_multimodal(n_cells=(100, 80, 60), n_features=(30, 20, 10), n_linked=5, seed=0)
    assert [len(lab) for lab in data.labels] == [100, 80, 60] and not data.paired
    with pytest.raises(ValueError, match="n_linked"):
        make_multimodal(n_features=(30, 5), n_linked=5)
    with pytest.raises(ValueError, match="same number of cells"):
        make_multimodal(n_cells=(10, 20), paired=True)
    with pytest.raises(ValueError, match="at least 2"):
        make_multimodal(n_features=(30,))
