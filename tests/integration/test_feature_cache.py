"""The trainer's embedding cache on real Azurite: one packed blob per (project, feature, resolution)."""

import numpy as np
import pytest

from cvcore import layout
from cvcore.storage import StorageClients
from gpu_trainer.store import BlobFeatureCache, TrainerStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(services):
    return TrainerStore(StorageClients(services.settings.storage))


def _ids(n):
    return [layout.new_id() for _ in range(n)]


def test_entries_survive_in_one_blob_per_feature(store):
    project = layout.new_id()
    ids = _ids(3)
    rng = np.random.default_rng(0)
    rows = {i: rng.normal(size=16).astype(np.float32) for i in ids}
    cache = BlobFeatureCache(store, project)
    assert cache.get(("net-ms9g", 224, ids[0])) is None
    for i in ids:
        cache.put(("net-ms9g", 224, i), rows[i])
    cache.put(("net-ms9", 160, ids[0]), rows[ids[0]][:8])
    cache.flush()
    names = sorted(b.name for b in store._models.list_blobs(name_starts_with=layout.project_prefix(project)))
    assert names == sorted(
        [layout.embedding_pack(project, "net-ms9g", 224), layout.embedding_pack(project, "net-ms9", 160)]
    )
    again = BlobFeatureCache(store, project)
    for i in ids:
        np.testing.assert_array_equal(again.get(("net-ms9g", 224, i)), rows[i])
    assert again.get(("net-ms9g", 224, layout.new_id())) is None
    np.testing.assert_array_equal(again.get(("net-ms9", 160, ids[0])), rows[ids[0]][:8])
    assert (again.hits, again.misses) == (4, 1)


def test_a_damaged_pack_is_recomputed_not_trusted(store):
    project, image = layout.new_id(), layout.new_id()
    store._models.upload_blob(layout.embedding_pack(project, "net-ms9", 224), b"not an npz", overwrite=True)
    cache = BlobFeatureCache(store, project)
    assert cache.get(("net-ms9", 224, image)) is None
    cache.put(("net-ms9", 224, image), np.ones(4, np.float32))
    cache.flush()
    np.testing.assert_array_equal(BlobFeatureCache(store, project).get(("net-ms9", 224, image)), np.ones(4))


def test_unused_entries_are_pruned_when_the_pack_outgrows_the_dataset(store):
    project = layout.new_id()
    old, kept = _ids(6), _ids(2)
    cache = BlobFeatureCache(store, project)
    for i in old + kept:
        cache.put(("f", 64, i), np.zeros(2, np.float32))
    cache.flush()
    second = BlobFeatureCache(store, project)  # a training that uses only `kept` (+1 new image)
    for i in kept:
        assert second.get(("f", 64, i)) is not None
    new = layout.new_id()
    second.put(("f", 64, new), np.ones(2, np.float32))
    second.flush()
    third = BlobFeatureCache(store, project)
    assert [third.get(("f", 64, i)) is not None for i in old] == [False] * 6
    assert all(third.get(("f", 64, i)) is not None for i in kept + [new])
