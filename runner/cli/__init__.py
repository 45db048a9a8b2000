"""The command line: `main` (parsing, the one place errors become exit codes), the shared
flags, the exit codes, and one module per command (check, run, status, schema, demo)."""
