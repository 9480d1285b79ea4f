"""The calculator app's views (streamlit): widgets, layout, charts and number formatting only.

No formula, physics or data lives here; every number shown comes from the library (`model.api`,
`model.serving`, `model.serving.roofline_points`, `model.hardware`). The entry point is `app.py` at the repository root;
pages are registered in `model.app.pages.PAGES`.
"""
