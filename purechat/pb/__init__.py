"""Protobuf code generated from proto/ by `just proto`; do not edit by hand."""
