"""Property-based fuzz tests (hypothesis) for the runtime's input boundaries.

Each property feeds generated, mostly nearly-valid inputs to one public entry point and checks that only
the documented errors escape (the ``RelayError`` family, ``JsonConversionError`` and the builtin
``ValueError``/``TypeError`` the reference raises for wrong argument types), that nothing hangs (every
example has a deadline and generated sizes are bounded), and, where cheap, a positive property (valid
input converts or round-trips exactly).

Running:

* ``pytest tests/fuzz`` runs the CI profile: a fixed, derandomized set of examples per property (the same
  inputs on every run), sized so the directory takes well under a minute on a 2-core machine.
* ``NEMO_RELAY_FUZZ_EXAMPLES=N pytest tests/fuzz`` runs every property with ``N`` *random* examples and a
  longer per-example deadline, for longer local runs (for example ``N=2000``). A failure prints a
  ``@reproduce_failure`` blob; ``--hypothesis-seed=S`` repeats a whole random run.

The strategies live in ``fuzz_support`` (Python values, a model of the documented JSON conversion) and
``fuzz_payloads`` (provider-shaped codec payloads built from the recorded fixtures).
"""

from __future__ import annotations
