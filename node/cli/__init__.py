"""The `consortium` command line: one module per command group, all registered in node/cli/main.py."""
