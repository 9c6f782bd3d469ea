"""GitHub Actions (`--format github`): annotations on the failing lines and a job summary;
workflow.yml is an example workflow."""
