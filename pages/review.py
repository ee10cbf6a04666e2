"""Review: not built yet; an honest empty state says what it will do and what it needs."""

import streamlit as st

from pages._ui import empty_state

st.title("Review")
empty_state("Chosen and rejected reasoning side by side with the seed question; accept, edit or reject; export the preference set.", "generated candidates (Augment)", "a later issue")
