import os

import pytest


@pytest.fixture(scope="session")
def runner_name():
    # Each medusa runner has its own session: a place for a per-runner database or port.
    return f"{os.environ.get('MEDUSA_WORKER', 'serial')}/{os.environ.get('MEDUSA_RUNNER', '0')}"
