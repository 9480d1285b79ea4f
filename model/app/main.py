"""The app's frame: page config, the scenario sidebar, the page selector, and a guard that turns anything
unexpected into a one-line message instead of a traceback in the page."""

from __future__ import annotations

import logging

import streamlit as st

from model.app.pages import PAGES, page
from model.app.scenario import sidebar
from model.errors import RidgeplanError

log = logging.getLogger("ridgeplan.app")
MIN_STREAMLIT = (1, 67)  # widgets bound to the URL (bind="query-params")


def _streamlit_ok() -> bool:
    version = tuple(int(x) for x in st.__version__.split(".")[:2] if x.isdigit())
    if version < MIN_STREAMLIT:
        st.error(f"ridgeplan's app needs streamlit >= {'.'.join(map(str, MIN_STREAMLIT))} (found {st.__version__}): "
                 "`pip install -U streamlit`.")
        return False
    return True


def main() -> None:
    st.set_page_config(page_title="ridgeplan calculator", page_icon="📐", layout="wide")
    if not _streamlit_ok():
        return
    titles = [p.title for p in PAGES]
    choice = st.radio("Page", titles, key="page", bind="query-params", horizontal=True, label_visibility="collapsed")
    try:
        ctx = sidebar()
        st.caption(page(choice).summary)
        page(choice).render(ctx)
    except RidgeplanError as err:  # an input problem no view attributed to a widget
        st.error(err.one_line(), icon="⚠️")
    except Exception as err:  # never a traceback in the page; the server log keeps it
        log.exception("unexpected error in the app")
        st.error(f"Unexpected error ({type(err).__name__}: {err}). The scenario may be outside what the model "
                 "covers; the server log has the details.", icon="🐞")
    st.sidebar.caption("ridgeplan: analytical roofline planner · every number from the library, assumptions listed "
                       "on the Estimate page · the URL holds the scenario")
