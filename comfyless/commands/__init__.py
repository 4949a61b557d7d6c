"""Command-line faces that are not core `comfyless` subcommands (cli.py's EXTERNAL).

A command module parses its own argv and calls library code (models/, lora/, ...); the library
never owns a command. `comfyless.demo` and `comfyless.regress.cli` are the other EXTERNAL faces.
"""
