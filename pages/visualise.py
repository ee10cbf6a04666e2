"""Visualise: not built yet; an honest empty state says what it will do and what it needs."""

import streamlit as st

from pages._ui import empty_state

st.title("Visualise")
empty_state("Sentence embeddings of train, augmented and test questions mapped to 2-D with UMAP, coloured by set, subject or correctness.", "train and test sets (Data)", "a later issue")
