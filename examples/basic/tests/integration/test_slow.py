import time

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("n", range(4))
def test_takes_a_moment(n, runner_name):
    time.sleep(0.25)
    print(f"ran on {runner_name}")
