"""The purechat client: calls over our transport, pipe mode and the interactive UI."""
