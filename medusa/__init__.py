"""medusa: a parallel test runner. See README.md; the shape of the system is in DESIGN.md."""

__version__ = "0.1.0"
