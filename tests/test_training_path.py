"""The tf.data training path yields exactly what `Batches` yields: same batches, order and scaling."""
from __future__ import annotations

import numpy as np

from study.training import Batches, as_dataset


def _tiny(n: int = 10):
    x = (np.arange(n * 2 * 2 * 3, dtype=np.int64).reshape(n, 2, 2, 3) * 7 % 256).astype(np.uint8)
    return x, np.arange(n, dtype=np.int32)


def test_as_dataset_matches_batches_over_several_epochs():
    x, y = _tiny()
    reference = Batches(x, y, 4, shuffle=True, seed=5)
    expected = []
    for _ in range(3):
        expected += [reference[i] for i in range(len(reference))]
        reference.on_epoch_end()
    got = list(as_dataset(Batches(x, y, 4, shuffle=True, seed=5), epochs=3).as_numpy_iterator())
    assert len(got) == len(expected) == 9
    for (gx, gy), (ex, ey) in zip(got, expected):
        assert gx.dtype == np.float32 and gy.dtype == ey.dtype
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)
    epochs = [np.concatenate([b[1] for b in got[k : k + 3]]) for k in (0, 3, 6)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0].tolist() != epochs[1].tolist()  # reshuffled between passes


def test_as_dataset_keeps_order_and_scaling_without_shuffle():
    x, y = _tiny(7)
    got = list(as_dataset(Batches(x, y, 3)).as_numpy_iterator())
    assert [len(b[1]) for b in got] == [3, 3, 1]
    np.testing.assert_allclose(np.concatenate([b[0] for b in got]), x / 255.0, rtol=1e-6)
    assert np.concatenate([b[1] for b in got]).tolist() == list(range(7))
