"""Side-by-side speed and memory measurements: ``python -m benchmarks``.

Every figure is a ratio between implementations measured in the same run, so
the table means something on any machine; the absolute seconds do not.
"""
