"""``birdnet-edge log report``: the detection log as one self-contained HTML page.

:mod:`.data` gathers what the page shows from the database into a frozen model, :mod:`.media`
picks the clips and spectrograms that fit the size cap, :mod:`.svg` draws the charts and
:mod:`.html` writes the page (no network, no external scripts, fonts or styles).
"""
