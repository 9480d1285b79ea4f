"""ridgeplan calculator: `streamlit run app.py`, then open the URL it prints.

This file only builds the server: a Streamlit app whose page script is model/app/page.py (pages are registered in
model/app/pages.py; every number comes from the library). At start-up it imports the library and evaluates the
default scenario once, so the first visitor does not wait for Python imports.
"""

import logging
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st

PAGE_SCRIPT = Path(__file__).resolve().parent / "model" / "app" / "page.py"

if not hasattr(st, "App"):  # streamlit < 1.67 runs this file as the page script instead of serving it
    st.error("ridgeplan's calculator needs streamlit >= 1.67: `pip install -U 'streamlit>=1.67'`")
    st.stop()


@asynccontextmanager
async def warm_start(_app):
    try:
        from model.app.cache import warm_up

        warm_up()
    except Exception:  # the page shows any real problem to the visitor; start-up must not fail on it
        logging.getLogger("ridgeplan.app").exception("warm-up failed")
    yield


app = st.App(str(PAGE_SCRIPT), lifespan=warm_start)
