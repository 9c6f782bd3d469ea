import pytest


@pytest.mark.parametrize("a, b, total", [(1, 2, 3), (2, 2, 4), (10, -3, 7)])
def test_add(a, b, total):
    assert a + b == total


def test_division_by_zero():
    with pytest.raises(ZeroDivisionError):
        1 / 0


@pytest.mark.xfail(reason="floats are not reals", strict=True)
def test_float_sum():
    assert 0.1 + 0.2 == 0.3
