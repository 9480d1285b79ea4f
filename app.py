"""ridgeplan calculator: `streamlit run app.py`, then open the URL it prints.

This file only builds the server: a Streamlit app whose page script is model/app/page.py (pages are registered in
model/app/pages.py; every number comes from the library). At start-up it imports the library and evaluates the
default scenario once, so the first visitor does not wait for Python imports.
"""

import logging
from contextlib import asynccontextmanager
from pathlib import Path

try:
    import streamlit as st
except ImportError:  # the library and CLI work without the app's web server; the calculator needs it
    raise SystemExit("error: the calculator needs the app extra: pip install -e '.[app]'") from None

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
