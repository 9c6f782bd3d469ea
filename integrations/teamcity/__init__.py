"""TeamCity (`--format teamcity`): service messages on stdout; settings.kts is an example
build configuration."""
