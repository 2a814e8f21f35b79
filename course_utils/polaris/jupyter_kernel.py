"""Register the course's Jupyter kernel so that it carries its environment with it.

A JupyterHub (ALCF's included) runs its server in its own environment and starts our kernel from
there: the kernel gets the hub's ``PATH``, not the course environment's. Tools that Parsl and
the notebooks start by name would then not be found, so the kernel spec sets ``PATH`` (course
environment first, then whatever the server had) and the thread limits itself.

    python -m course_utils.polaris.jupyter_kernel [--name ml-in-the-loop] [--user | --sys-prefix]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_NAME = "ml-in-the-loop"
DISPLAY_NAME = "Python (ML in the loop)"


def kernel_env() -> dict[str, str]:
    """What the kernel needs beyond its interpreter: ``${PATH}`` is filled in by Jupyter."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}${{PATH}}",
        "OMP_NUM_THREADS": "1",
        "COURSE_UTILS_XTB_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    prefix_var = "CONDA_PREFIX" if os.environ.get("CONDA_PREFIX") == sys.prefix else "VIRTUAL_ENV"
    env[prefix_var] = sys.prefix
    return env


def register_kernel(name: str = DEFAULT_NAME, *, user: bool = False,
                    prefix: str | None = None) -> Path:
    """Install (or refresh) the kernel spec; returns its folder. Safe to call again."""
    from ipykernel.kernelspec import install

    if not user and prefix is None:
        prefix = sys.prefix
    where = install(user=user, prefix=None if user else prefix, kernel_name=name,
                    display_name=DISPLAY_NAME, env=kernel_env())
    return Path(where)


def needs_refresh(name: str = DEFAULT_NAME) -> bool:
    """True if the kernel is missing or was registered for another interpreter or without env."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return True
    return spec.argv[:1] != [sys.executable] or spec.env != kernel_env()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.polaris.jupyter_kernel",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default=DEFAULT_NAME)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--user", action="store_true", help="in ~/.local/share/jupyter (hubs)")
    scope.add_argument("--sys-prefix", action="store_true", help="inside this environment")
    parser.add_argument("--if-needed", action="store_true",
                        help="do nothing if the registered kernel is already right")
    args = parser.parse_args(argv)
    if args.if_needed and not needs_refresh(args.name):
        return 0
    path = register_kernel(args.name, user=args.user)
    print(f"registered Jupyter kernel {args.name!r} in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
