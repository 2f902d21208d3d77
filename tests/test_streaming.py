"""Streamed batches: the same rows the device path draws, in schedule order, errors handed to the consumer."""

import jax
import numpy as np
import pytest
import scipy.sparse as sp

from scmodal_jax.core.step import gather_batch, sample_indices
from scmodal_jax.runtime.streaming import BatchStream


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(40, 6)).astype(np.float32)
    x1 = sp.random(30, 5, density=0.4, format="csr", random_state=1, dtype=np.float32)
    links = [(rng.normal(size=(40, 2)).astype(np.float32), rng.normal(size=(30, 2)).astype(np.float32))]
    return [x0, x1], links


def _device_batch(sources, links, key, step, batch_size):
    dense = tuple(s if isinstance(s, np.ndarray) else s.toarray() for s in sources)
    idx = sample_indices(key, np.int32(step), [s.shape[0] for s in sources], batch_size)
    return jax.device_get(gather_batch((dense, tuple(links)), idx))


def test_host_batches_are_the_device_paths_batches(data):
    sources, links = data
    key = np.asarray(jax.random.PRNGKey(5))
    stream = BatchStream(sources, links, batch_size=8, key=key, schedule=[(0, 3)])
    xs, link_rows = stream.host_batch(4, 3)
    assert xs[0].shape == (3, 8, 6) and xs[1].shape == (3, 8, 5) and link_rows[0][1].shape == (3, 8, 2)
    for t in range(3):
        want_xs, want_links = _device_batch(sources, links, key, 4 + t, 8)
        for got, want in zip(xs, want_xs, strict=True):
            np.testing.assert_array_equal(got[t], want)
        np.testing.assert_array_equal(link_rows[0][0][t], want_links[0][0])
        np.testing.assert_array_equal(link_rows[0][1][t], want_links[0][1])


def test_iteration_follows_the_schedule_with_prefetch(data):
    sources, links = data
    key = np.asarray(jax.random.PRNGKey(1))
    schedule = [(0, 2), (2, 1), (3, 4)]
    stream = BatchStream(sources, links, batch_size=4, key=key, schedule=schedule, prefetch=2)
    got = list(stream)
    assert len(got) == 3
    for (first, n), batch in zip(schedule, got, strict=True):
        want = stream.host_batch(first, n)
        for a, b in zip(jax.tree_util.tree_leaves(batch), jax.tree_util.tree_leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(a), b)


def test_a_failing_source_raises_in_the_consumer(data):
    sources, links = data

    class Broken:
        shape = (30, 5)
        dtype = np.float32

        def to_memory(self):  # looks backed
            raise AssertionError

        def __getitem__(self, idx):
            raise OSError("disk gone")

    stream = BatchStream([sources[0], Broken()], links, batch_size=4, key=np.asarray(jax.random.PRNGKey(0)),
                         schedule=[(0, 1)])  # fmt: skip
    with pytest.raises(OSError, match="disk gone"):
        list(stream)
