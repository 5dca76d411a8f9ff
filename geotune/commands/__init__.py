"""One module per `geotune` subcommand: each has ``add_arguments(parser)`` and ``run(args) -> int``.

Commands parse arguments, load the recipe and print; the work happens in the library packages
(``finetune``, ``selection``, ``eval``) and in ``geotune`` itself (experiment, demo, sweep, SynthRS).
"""
