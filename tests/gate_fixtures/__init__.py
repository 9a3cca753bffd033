"""Small modules with known bugs, for the gate to judge (``tests/test_gate.py``).

``widely_used`` is written the way the widely used AlignedReID code is; each other module
carries one class of subtle bug that the suite once missed, and provides only the
functions that show it (the gate judges each function on its own). None is imported by
the suite itself: the gate loads them by name, as it loads a user's module.
"""
