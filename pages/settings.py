"""Settings: not built yet; an honest empty state says what it will do and what it needs."""

import streamlit as st

from pages._ui import empty_state

st.title("Settings")
empty_state("Register models (Gemini, OpenAI-compatible servers such as vLLM, local transformers), see keys masked, and test a connection.", "nothing", "issue #4")
