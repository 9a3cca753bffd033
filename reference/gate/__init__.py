"""The conformance gate: the test suite run on your module, and a verdict by contract clause.

    python -m reference.gate my_package.my_module --array torch [--gate-report v.json]

``plugin`` is the pytest plugin behind it (the suite's own ``conftest.py`` loads it too),
``clauses`` says which test checks which clause of the contract, ``conventions``
measures the two conventions a module may follow differently, ``verdict`` sorts every
outcome into clauses and severities. Needs the ``test`` extra (pytest, hypothesis).
"""
