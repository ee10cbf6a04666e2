"""Dashboard entry: one navigation over pages/, a sidebar with the pipeline's state."""

import streamlit as st

from core.steps import steps
from pages._ui import open_store, sidebar_status

st.set_page_config(page_title="CSAT distillation", page_icon=":material/school:", layout="wide")

# The default page is served at "/" whatever its url_path (Streamlit shows "Page not found" for it under
# that path), so /home is a hidden page of its own that switches to Home: both addresses open Home.
HOME = st.Page("pages/home.py", title="Home", icon=":material/home:", default=True, url_path="index")


def _home_alias() -> None:
    st.switch_page(HOME)


# Home, every step with a page (the registry, core/steps: page file, title, icon and URL are its name), Settings.
PAGES = [
    HOME,
    *(st.Page(f"pages/{s.name}.py", title=s.title, icon=s.icon, url_path=s.name) for s in steps() if s.page),
    st.Page("pages/settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
    st.Page(_home_alias, title="Home", url_path="home", visibility="hidden"),
]

page = st.navigation(PAGES)
store = open_store()
sidebar_status(store)
page.run()
