"""What the three implementations share that is no algorithm: the progress reporter and
the checks of scalar arguments (``arguments``).

``reference``, ``numba_impl`` and ``torch_impl`` stay independent in what they compute
(none imports another's algorithm); a long run reports its progress the same way in all
three, from this one place, so that the three reports cannot drift apart; so are a
margin or a weight checked.
"""
