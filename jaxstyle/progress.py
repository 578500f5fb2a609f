"""Progress bars: tqdm's, hidden by ``progress=False`` (the CLI's ``-q``) or by tqdm's
own ``TQDM_DISABLE=1``."""

from __future__ import annotations


def progress_bar(progress: bool, **options):
    """``tqdm.auto.tqdm(**options)``, hidden if not ``progress``. tqdm reads its
    ``TQDM_*`` environment variables only for options not passed, so ``disable`` is
    passed only to hide the bar: a shown one still obeys ``TQDM_DISABLE``."""
    from tqdm.auto import tqdm

    return tqdm(**options) if progress else tqdm(disable=True, **options)
