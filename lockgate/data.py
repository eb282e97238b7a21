"""Read dataset versions with their bytes checked: ``lockgate.data.load("tumours@1")``.

Each call finds the version's files on this machine, checks every file's SHA-256 against the
version's manifest (an :class:`~lockgate.errors.IntegrityError` names the files that differ) and,
inside ``lockgate.track``, records on the run the digest of the bytes it checked::

    import lockgate

    with lockgate.track(params={"C": 0.5}) as run:
        frame = lockgate.data.load("tumours@1")       # a DataFrame, from the bytes that were checked
        images = lockgate.data.path("scans@4")        # a folder's path, every file checked

The implementation is ``lockgate.tracking.reading``.
"""

from __future__ import annotations

from lockgate.tracking.reading import load, path

__all__ = ["load", "path"]
