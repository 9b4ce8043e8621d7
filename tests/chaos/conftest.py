"""The chaos tier asserts on whole queues and containers (nothing left over, nothing poisoned, no orphan), so
each module gets its own Azurite: another test's delayed retry on the shared session emulator must not count."""

import pytest

from tests.support.azurite import running_azurite


@pytest.fixture(scope="module")
def azurite():
    with running_azurite() as conn:
        yield conn
