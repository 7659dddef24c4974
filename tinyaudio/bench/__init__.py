"""`tinyaudio bench`: every way to run the model, side by side in one run, as ratios.

The parent (cli.py) is torch-free: it builds the bundles once, then measures each configuration
in its own child process (so each peak RSS is its own) and writes JSON, markdown and a plot.
"""
