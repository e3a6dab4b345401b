import pytest

from stratiflow.local.provision import ensure_provisioned


@pytest.fixture(scope="session", autouse=True)
def provisioned():
    """Connector jars must exist before any job graph is built."""
    ensure_provisioned()
