"""steercode's front ends: the LSP server, the CLI and the JSON-lines mode.

Only this package imports pygls / lsprotocol (and only ``server``, ``lsp_utils`` do).
"""

__version__ = "0.1.0"
