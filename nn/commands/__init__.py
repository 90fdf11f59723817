"""The work behind each command of `python -m nn` (nn/cli.py parses the options and dispatches
here): one module per command, each with `run(args) -> exit code`; common.py holds what they share.
"""
