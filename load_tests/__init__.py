"""Load tests (``locustfile.py``) and the serving benchmark (``bench``); not shipped."""
