"""Evaluate: not built yet; an honest empty state says what it will do and what it needs."""

import streamlit as st

from pages._ui import empty_state

st.title("Evaluate")
empty_state("Accuracy, macro-F1 and CSAT points per subject against the base model, with paired significance and the questions fixed or broken.", "a test set (Data) and a model or imported predictions", "issue #6")
