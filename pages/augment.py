"""Augment: not built yet; an honest empty state says what it will do and what it needs."""

import streamlit as st

from pages._ui import empty_state

st.title("Augment")
empty_state("For each hard negative, the teacher extracts the logical structure and writes new questions with the same logic in another domain, each with a chosen and a rejected reasoning.", "hard negatives from a mining run (Mine)", "a later issue")
