"""The subcommands of ``wsdoctor``: one module each, with ``add_parser(sub)`` and ``handle(args)``."""
