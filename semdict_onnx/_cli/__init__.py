"""The `semdict` command line (private): main.py builds the parser, one module per subcommand."""
