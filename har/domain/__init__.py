"""The domain: what a model, a recording, a window and a prediction are, with no framework.

Imports only numpy, pandas, scipy, pydantic and :mod:`har.settings`; every other layer may
import it.
"""
