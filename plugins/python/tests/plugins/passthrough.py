"""Every event written on unchanged: the Python twin of the Rust
`passthrough`, for measuring the SDK's floor (`bench.py --boundary`)."""

from sluice_sdk import Output


def process(event):
    return [Output.forward(event)]
