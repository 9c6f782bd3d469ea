"""JUnit XML (`--format junit:PATH`), for Jenkins, Bamboo and every CI server that reads it."""
