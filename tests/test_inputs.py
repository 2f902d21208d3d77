"""Training inputs: datasets and links checked in one pass, first-column links from every kind of source."""

import numpy as np
import pytest
import scipy.sparse as sp

from scmodal_jax import first_columns
from scmodal_jax.runtime.inputs import training_inputs


class CountingBacked:
    """A stand-in for a backed matrix (h5py / anndata backed) that counts the rows read."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.rows_read = 0

    def to_memory(self):
        return self.array

    def __getitem__(self, idx):
        out = self.array[idx]
        self.rows_read += out.shape[0]
        return out


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(40, 6)).astype(np.float32)


def test_first_columns_from_dense_sparse_and_backed_sources(arrays):
    a, b = arrays
    backed = CountingBacked(b)
    inputs = training_inputs([sp.csr_matrix(a), backed], first_columns(3))
    np.testing.assert_array_equal(inputs.links[0][0], a[:, :3])
    np.testing.assert_array_equal(inputs.links[0][1], b[:, :3])
    assert backed.rows_read == b.shape[0]  # validation and the linked columns: one read of the backed rows
    assert inputs.n_features == (8, 6) and inputs.link_widths == (3,)
    assert inputs.dense_nbytes == 4 * (50 * 8 + 40 * 6 + 50 * 3 + 40 * 3)
    dense, links = inputs.dense()
    np.testing.assert_array_equal(dense[0], a)
    np.testing.assert_array_equal(dense[1], b)


def test_chain_with_widths_per_pair(arrays):
    a, b = arrays
    c = np.arange(60, dtype=np.float32).reshape(20, 3)
    inputs = training_inputs([a, b, c], first_columns([4, 2]))
    assert [left.shape[1] for left, _ in inputs.links] == [4, 2]
    np.testing.assert_array_equal(inputs.links[1][0], b[:, :2])
    np.testing.assert_array_equal(inputs.links[1][1], c[:, :2])


def test_explicit_links_and_prepared_like_inputs(arrays):
    a, b = arrays
    left, right = a[:, :2] * 2, b[:, :2] * 3
    inputs = training_inputs([a, b], [(left, right)])
    np.testing.assert_array_equal(inputs.links[0][1], right)

    class PreparedLike:
        datasets = [a, b]

        def link_matrices(self):
            return [(left, right)]

    prepared = PreparedLike()
    inputs = training_inputs(prepared)
    assert inputs.preprocessing is prepared
    np.testing.assert_array_equal(inputs.links[0][0], left)


@pytest.mark.parametrize(
    "datasets, links, message",
    [
        (42, first_columns(2), "datasets must be a list"),
        (["a"], first_columns(2), "at least 2 datasets"),
        (None, None, "links are required"),
    ],
)
def test_structure_errors(arrays, datasets, links, message):
    a, b = arrays
    if datasets == ["a"]:
        datasets = [a]
    if datasets is None:
        datasets = [a, b]
    with pytest.raises(ValueError, match=message):
        training_inputs(datasets, links)


def test_dataset_errors_come_before_link_errors(arrays):
    a, b = arrays
    bad = b.copy()
    bad[3, 1] = np.nan
    # too wide for b *and* NaN in b: the dataset's own problem is reported first
    with pytest.raises(ValueError, match=r"dataset 1: 1 non-finite value\(s\) \(NaN first at row 3, column 1\)"):
        training_inputs([a, bad], first_columns(7))
    with pytest.raises(ValueError, match=r"first_columns\(7\) for pair \(0, 1\): dataset 1 has only 6 features"):
        training_inputs([a, b], first_columns(7))
    with pytest.raises(ValueError, match="first_columns got 2 widths for 1 dataset pairs"):
        training_inputs([a, b], first_columns([2, 2]))


def test_link_shape_errors(arrays):
    a, b = arrays
    with pytest.raises(ValueError, match="need 1 link pair"):
        training_inputs([a, b], [])
    with pytest.raises(ValueError, match="left block has 2 columns, right block 3"):
        training_inputs([a, b], [(a[:, :2], b[:, :3])])
    with pytest.raises(ValueError, match="left block has 49 rows, dataset 0 has 50 cells"):
        training_inputs([a, b], [(a[1:, :2], b[:, :2])])
    with pytest.raises(ValueError, match="dataset 1 has 1 cell"):
        training_inputs([a, b[:1]], first_columns(2))
