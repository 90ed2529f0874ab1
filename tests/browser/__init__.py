"""The lessons in a real browser: JupyterLab served locally, Debian's Chromium driving it.

``conftest.py`` starts both (and checks that nothing is left afterwards),
``notebook.py`` is what a learner's hands do in a page, ``plans.py`` is the
table of what to click in each lesson, and ``screenshots.py`` refreshes the
pictures in ``docs/screenshots/``.
"""
