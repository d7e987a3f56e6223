"""The BentoML edge: what each worker builds, the model service client, the docs page and
the patches of BentoML's internals. With :mod:`har.runtime.model_store`, the only code that
imports BentoML."""
