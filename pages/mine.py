"""Mine: not built yet; an honest empty state says what it will do and what it needs."""

import streamlit as st

from pages._ui import empty_state

st.title("Mine")
empty_state("Both models solve every question of a pool; questions the teacher gets right and the student wrong become hard negatives, with the golden and failed reasoning side by side.", "a train pool (Data) and a teacher and a student model (Settings)", "issue #5")
