"""Dashboard entry: one navigation over pages/, a sidebar with the pipeline's state."""

import streamlit as st

from pages._ui import open_store, sidebar_status

st.set_page_config(page_title="CSAT distillation", page_icon=":material/school:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True, url_path="home"),
    st.Page("pages/data.py", title="Data", icon=":material/library_books:", url_path="data"),
    st.Page("pages/mine.py", title="Mine", icon=":material/search:", url_path="mine"),
    st.Page("pages/augment.py", title="Augment", icon=":material/auto_awesome:", url_path="augment"),
    st.Page("pages/review.py", title="Review", icon=":material/rate_review:", url_path="review"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"),
    st.Page("pages/visualise.py", title="Visualise", icon=":material/scatter_plot:", url_path="visualise"),
    st.Page("pages/settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
]

page = st.navigation(PAGES)
store = open_store()
sidebar_status(store)
page.run()
