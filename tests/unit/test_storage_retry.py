"""The Blob and Queue clients the app and the trainer build give up on unreachable storage in seconds (so a
route answers 503 instead of waiting out the SDKs' 15 s + 3^n back-offs, 83 s in tests/chaos) while still
riding out a few seconds' blip."""

import pytest

from cvcore.settings import load
from cvcore.storage import StorageClients


def _retry(client):
    found = [p for p in client._pipeline._impl_policies if type(p).__name__ == "ExponentialRetry"]
    assert len(found) == 1, "one ExponentialRetry in the pipeline"
    return found[0]


@pytest.mark.parametrize("service", ["blob", "queue_service"])
def test_storage_gives_up_in_seconds_but_outlasts_a_blip(service):
    clients = StorageClients(load({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).storage)
    policy = _retry(getattr(clients, service))
    waits = [policy.initial_backoff + policy.increment_base**n for n in range(1, policy.total_retries + 1)]
    assert 5 <= sum(waits) <= 12, waits
    assert policy.random_jitter_range < min(waits)
