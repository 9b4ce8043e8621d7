import pytest

from cvcore import settings
from functions import bootstrap


@pytest.fixture(scope="session")
def services(azurite):
    """Real services (Table + Blob adapters) on the session's Azurite."""
    s = bootstrap.build(settings.load({"AzureWebJobsStorage": azurite}))
    yield s
    s.pool.shutdown(wait=False)
