"""The page script Streamlit runs for every visitor session (app.py points the server at it; tests load it with
streamlit's AppTest). Importing this module draws the app."""

from model.app.main import main

main()
