"""Running on ALCF's Polaris: PBS Pro job scripts and submission (``pbs``, behind ``submit/``),
and the Jupyter kernel registration (``jupyter_kernel``, run by ``activate_env.sh``)."""

from course_utils import lazy_exports

__all__ = ["register_kernel", "submit"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "submit": "pbs", "register_kernel": "jupyter_kernel",
})
