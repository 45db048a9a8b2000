"""The exit codes of every `bridge-runner` command; only `runner.cli` maps errors to them."""

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and found a problem (invalid bridge, bridge not Ready, ...)
EXIT_USAGE = 2  # the command line was wrong (argparse uses 2 as well)
EXIT_INTERNAL = 3  # a bug or an unexpected environment failure
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
