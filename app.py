"""Dashboard entry: one navigation over pages/, a sidebar with the pipeline's state."""

import streamlit as st

from pages._ui import open_store, sidebar_status

st.set_page_config(page_title="CSAT distillation", page_icon=":material/school:", layout="wide")

# The default page is served at "/" whatever its url_path (Streamlit shows "Page not found" for it under
# that path), so /home is a hidden page of its own that switches to Home: both addresses open Home.
HOME = st.Page("pages/home.py", title="Home", icon=":material/home:", default=True, url_path="index")


def _home_alias() -> None:
    st.switch_page(HOME)


PAGES = [
    HOME,
    st.Page("pages/data.py", title="Data", icon=":material/library_books:", url_path="data"),
    st.Page("pages/mine.py", title="Mine", icon=":material/search:", url_path="mine"),
    st.Page("pages/augment.py", title="Augment", icon=":material/auto_awesome:", url_path="augment"),
    st.Page("pages/review.py", title="Review", icon=":material/rate_review:", url_path="review"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"),
    st.Page("pages/visualise.py", title="Visualise", icon=":material/scatter_plot:", url_path="visualise"),
    st.Page("pages/settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
    st.Page(_home_alias, title="Home", url_path="home", visibility="hidden"),
]

page = st.navigation(PAGES)
store = open_store()
sidebar_status(store)
page.run()
