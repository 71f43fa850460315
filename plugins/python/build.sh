#!/bin/sh
# Builds a Python plugin into a Sluice component, straight from a checkout
# (no `pip install` of the SDK needed):
#
#   plugins/python/build.sh APP.py -o APP.wasm [--wit DIR] [--plugin NAME] [-p DIR]... [-q]
#
# It is `python3 -m sluice_sdk build` with this directory on PYTHONPATH.
# Needs componentize-py 0.25.1 for that python3:
#   python3 -m pip install componentize-py==0.25.1
# Set PYTHON to use another interpreter.
here=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m sluice_sdk build "$@"
